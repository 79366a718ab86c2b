"""Finished attempts waiting to be reported to the coordinator.

Completions ride on the next claim when one is about to be sent (``take_for_claim``); while a
claim is in flight (long-polling) or claiming has stopped, the flusher sends them at once through
``complete``. Nothing is dropped while the coordinator is unreachable: each completion is retried
until the lease it was made under would have expired. Completions are idempotent on the
coordinator, so resending one after an unclear failure is safe.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from agent.backoff import Backoff
from agent.errors import AuthError, CoordinatorError, CoordinatorUnavailable, LeaseLost, WorkerUnknown
from protocol import CompletionAck, TaskCompletion

logger = logging.getLogger(__name__)

SendCompletions = Callable[[Sequence[TaskCompletion]], Awaitable[list[CompletionAck]]]
"""Sends completions with ``complete`` and returns the acks (raises the agent's errors)."""


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
            batch, self._pending = self._pending, []
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
                await asyncio.sleep(self._backoff.next_delay())

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
                delay = min(backoff.next_delay(), deadline - time.monotonic())
                if delay <= 0:
                    break
                await asyncio.sleep(delay)
        return not self._pending

    async def flush_once(self) -> bool:
        """Send the pending completions once; False when they must be retried later."""
        self._drop_expired()
        batch, self._pending = self._pending, []
        if not batch:
            return True
        try:
            acks = await self._send([item.completion for item in batch])
        except (CoordinatorUnavailable, WorkerUnknown) as exc:
            logger.warning("could not report %d completion(s), will retry: %s", len(batch), exc)
            for item in batch:
                item.tried = True
            self._pending[:0] = batch
            return False
        except LeaseLost:
            return await self._send_each(batch)
        except CoordinatorError as exc:
            logger.error("completions refused, dropped: %s", exc, extra={"action": "completion_dropped"})
            self.dropped += len(batch)
            return True
        except AuthError:
            self._pending[:0] = batch
            raise
        except BaseException:
            self._pending[:0] = batch
            raise
        self._backoff.reset()
        log_acks(acks)
        return True

    async def _send_each(self, batch: list[PendingCompletion]) -> bool:
        """After a 409 on a batch, find which completion is stale by sending them one by one."""
        ok = True
        for index, item in enumerate(batch):
            try:
                log_acks(await self._send([item.completion]))
            except LeaseLost:
                _log_stale(item.completion.job_id, "lease lost")
                self.dropped += 1
            except (CoordinatorUnavailable, WorkerUnknown):
                self._pending[:0] = batch[index:]
                ok = False
                break
        return ok

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
