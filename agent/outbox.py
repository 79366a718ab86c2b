"""Finished attempts waiting to be reported to the coordinator.

Completions ride on the next claim when one is about to be sent (``take_for_claim``); while a
claim is in flight (long-polling) or claiming has stopped, the flusher sends them at once through
``complete``. Nothing is dropped while the coordinator is unreachable: each completion is retried
until the lease it was made under would have expired. Completions are idempotent on the
coordinator, so resending one after an unclear failure is safe.

A request carries at most as many completions as the protocol allows. When the coordinator
refuses a batch as a whole (one stale lease, a body over its size limit), the batch is halved
until the refusal is down to single completions; a result too large to send on its own is
reported as a failed attempt instead, so that the job does not wait for its lease to expire.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from pydantic import BaseModel

from taskpost.agent.backoff import Backoff
from taskpost.agent.errors import (
    AuthError,
    CoordinatorError,
    CoordinatorUnavailable,
    LeaseLost,
    WorkerUnknown,
)
from taskpost.agent.sendable import sendable_text
from taskpost.protocol import (
    MAX_ERROR_TEXT_LENGTH,
    ClaimRequest,
    CompleteRequest,
    CompletionAck,
    Outcome,
    TaskCompletion,
)

logger = logging.getLogger(__name__)

SendCompletions = Callable[[Sequence[TaskCompletion]], Awaitable[list[CompletionAck]]]
"""Sends completions with ``complete`` and returns the acks (raises the agent's errors)."""


def _max_items(model: type[BaseModel], field: str) -> int:
    for constraint in model.model_fields[field].metadata:
        limit = getattr(constraint, "max_length", None)
        if isinstance(limit, int):
            return limit
    raise LookupError(f"{model.__name__}.{field} has no max_length")


MAX_PER_REQUEST = min(_max_items(ClaimRequest, "completions"), _max_items(CompleteRequest, "completions"))
"""Most completions one claim or complete may carry."""


@dataclass
class PendingCompletion:
    completion: TaskCompletion
    deadline: float
    """``time.monotonic()`` past which the lease is gone and resending is useless."""
    tried: bool = False
    """Sent at least once without an answer. Only then may it be dropped for an expired lease:
    the local clock is a guess, and only the coordinator knows (it extends leases on restart)."""


class Outbox:
    """The pending completions, and the flusher that sends those a claim cannot carry."""

    def __init__(self, send: SendCompletions, backoff: Backoff) -> None:
        self._send = send
        self._backoff = backoff
        self._pending: list[PendingCompletion] = []
        self._claim_in_flight = False
        self._claiming = True
        self._changed = asyncio.Event()
        self._retry_after_s: float | None = None
        self.dropped = 0

    # -- state ------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._pending)

    def pending(self) -> list[TaskCompletion]:
        """The completions waiting to be sent, oldest first."""
        return [item.completion for item in self._pending]

    def add(self, completion: TaskCompletion, deadline: float) -> None:
        self._pending.append(PendingCompletion(completion, deadline))
        self._changed.set()

    def stop_claiming(self) -> None:
        """Claims will no longer carry completions: the flusher sends everything from now on."""
        self._claiming = False
        self._changed.set()

    def resume_claiming(self) -> None:
        self._claiming = True

    # -- piggybacking on claims -------------------------------------------------------------
    def take_for_claim(self, *, carry: bool = True) -> list[PendingCompletion]:
        """Drain the pending list and mark a claim in flight, in one synchronous step.

        With ``carry=False`` (after a claim was refused) nothing is taken: the flusher sends the
        completions on their own, so one bad completion cannot block claiming.
        """
        self._drop_expired()
        batch: list[PendingCompletion] = []
        if carry:
            batch = self._take()
        self._claim_in_flight = True
        self._changed.set()
        return batch

    def claim_sent(self, batch: Sequence[PendingCompletion], acks: Sequence[CompletionAck] | None) -> None:
        """The claim is over: ``acks`` when it was answered, None when it failed (batch is kept)."""
        self._claim_in_flight = False
        if acks is None:
            for item in batch:
                item.tried = True
            self._pending[:0] = batch
            self._changed.set()
        else:
            log_acks(acks)

    # -- the flusher ------------------------------------------------------------------------
    def _should_flush(self) -> bool:
        return bool(self._pending) and (self._claim_in_flight or not self._claiming)

    async def run_flusher(self) -> None:
        """Send completions a claim cannot carry, retrying with back-off; runs until cancelled."""
        while True:
            while not self._should_flush():
                self._changed.clear()
                await self._changed.wait()
            if not await self.flush_once():
                await asyncio.sleep(self._backoff.next_delay(at_least=self._retry_after_s))

    async def flush(self, timeout_s: float) -> bool:
        """Try to send everything within ``timeout_s`` (used at shutdown); True when empty."""
        deadline = time.monotonic() + timeout_s
        backoff = Backoff(self._backoff.base_s, self._backoff.cap_s)
        while self._pending:
            try:
                sent = await self.flush_once()
            except AuthError as exc:
                logger.error("completions not reported: %s", exc)
                break
            if not sent:
                delay = min(backoff.next_delay(at_least=self._retry_after_s), deadline - time.monotonic())
                if delay <= 0:
                    break
                await asyncio.sleep(delay)
        return not self._pending

    async def flush_once(self) -> bool:
        """Send the oldest pending completions once; False when they must be retried later."""
        self._drop_expired()
        batch = self._take()
        if not batch:
            return True
        if not await self._deliver(batch):
            return False
        self._backoff.reset()
        self._retry_after_s = None
        return True

    def _take(self) -> list[PendingCompletion]:
        batch, self._pending = self._pending[:MAX_PER_REQUEST], self._pending[MAX_PER_REQUEST:]
        return batch

    def _put_back(self, items: Sequence[PendingCompletion], *, tried: bool = False) -> None:
        for item in items:
            item.tried = item.tried or tried
        self._pending[:0] = items

    async def _deliver(self, batch: list[PendingCompletion]) -> bool:
        """Send ``batch``; False when the coordinator could not be reached (it is pending again).

        Any other error puts the batch back and is raised.
        """
        try:
            acks = await self._send([item.completion for item in batch])
        except (CoordinatorUnavailable, WorkerUnknown) as exc:
            logger.warning("could not report %d completion(s), will retry: %s", len(batch), exc)
            if isinstance(exc, CoordinatorUnavailable):
                self._retry_after_s = exc.retry_after_s
            self._put_back(batch, tried=True)
            return False
        except (LeaseLost, CoordinatorError) as exc:
            if len(batch) == 1:
                return await self._refused(batch[0], exc)
            return await self._deliver_halves(batch)
        except BaseException:
            self._put_back(batch)
            raise
        log_acks(acks)
        return True

    async def _deliver_halves(self, batch: list[PendingCompletion]) -> bool:
        """After a refusal of the whole batch: send each half on its own, to narrow it down."""
        middle = len(batch) // 2
        first, second = batch[:middle], batch[middle:]
        try:
            delivered = await self._deliver(first)
        except BaseException:
            self._put_back(second)
            raise
        if not delivered:
            self._put_back(second)
            return False
        return await self._deliver(second)

    async def _refused(self, item: PendingCompletion, error: LeaseLost | CoordinatorError) -> bool:
        """The coordinator refused this one completion: dropped, or replaced by a smaller one."""
        completion = item.completion
        if isinstance(error, LeaseLost):
            _log_stale(completion.job_id, "lease lost")
        elif error.status == 413 and completion.outcome is Outcome.SUCCEEDED:
            logger.error(
                "result too large to report, reporting a failed attempt instead: %s",
                error,
                extra={"job_id": completion.job_id, "action": "result_too_large"},
            )
            return await self._deliver([PendingCompletion(_too_large(completion, error), item.deadline)])
        else:
            logger.error(
                "completion refused, dropped: %s",
                error,
                extra={"job_id": completion.job_id, "action": "completion_dropped"},
            )
        self.dropped += 1
        return True

    def _drop_expired(self) -> None:
        now = time.monotonic()
        keep: list[PendingCompletion] = []
        for item in self._pending:
            if item.deadline > now or not item.tried:
                keep.append(item)
                continue
            self.dropped += 1
            logger.error(
                "completion dropped: the lease expired before the coordinator could be reached",
                extra={"job_id": item.completion.job_id, "action": "completion_dropped"},
            )
        self._pending = keep


def _too_large(completion: TaskCompletion, error: CoordinatorError) -> TaskCompletion:
    """The failed attempt reported in place of a result the coordinator will not take."""
    return TaskCompletion(
        job_id=completion.job_id,
        lease_token=completion.lease_token,
        outcome=Outcome.FAILED,
        error_message=sendable_text(
            f"the handler's result is larger than the coordinator accepts: {error}", MAX_ERROR_TEXT_LENGTH
        ),
        error_kind="result_too_large",
        retryable=False,
    )


def log_acks(acks: Sequence[CompletionAck]) -> None:
    for ack in acks:
        if ack.accepted:
            logger.info(
                "completion accepted (%s)", ack.state, extra={"job_id": ack.job_id, "action": "completed"}
            )
        else:
            _log_stale(ack.job_id, ack.message or ack.code or "not accepted")


def _log_stale(job_id: str, why: str) -> None:
    logger.warning(
        "completion not applied by the coordinator, dropped: %s",
        why,
        extra={"job_id": job_id, "action": "completion_stale"},
    )
