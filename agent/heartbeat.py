"""The heartbeat: one request per interval for all running tasks, and what its answer means."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from taskpost.agent.client import CoordinatorClient
from taskpost.agent.errors import CoordinatorError, CoordinatorUnavailable, WorkerUnknown
from taskpost.agent.handlers.base import CancelReason
from taskpost.agent.state import AgentState, RunningTask
from taskpost.protocol import HeartbeatResponse

logger = logging.getLogger(__name__)


class Heartbeat:
    """Extends every lease the agent holds, and applies cancel requests, lost leases and drain."""

    def __init__(
        self,
        client: CoordinatorClient,
        state: AgentState,
        reregister: Callable[[str], Awaitable[None]],
        on_drain: Callable[[bool], None],
    ) -> None:
        self.client = client
        self.state = state
        self._reregister = reregister
        self._on_drain = on_drain

    async def run(self) -> None:
        """Beat every ``cadence.heartbeat_interval_s`` until cancelled, and sooner (every
        ``progress_interval_s``) when a task's progress, message or partial output changed;
        failures wait for the next tick."""
        last = time.monotonic()
        while True:
            cadence = self.state.cadence
            await asyncio.sleep(min(cadence.progress_interval_s, cadence.heartbeat_interval_s))
            changed = [task.ctx.take_changed() for task in list(self.state.running.values())]
            if any(changed) or time.monotonic() - last >= cadence.heartbeat_interval_s * 0.99:
                last = time.monotonic()
                await self.beat()

    async def beat(self) -> HeartbeatResponse | None:
        worker_id = self.state.worker_id
        if worker_id is None:
            return None
        tasks = list(self.state.running.values())
        sent = [task.progress(partial_output=self.state.cadence.partial_output) for task in tasks]
        try:
            response = await self.client.heartbeat(worker_id, sent)
        except WorkerUnknown:
            logger.warning(
                "coordinator does not know this worker any more: registering again",
                extra={"action": "reregister"},
            )
            await self._reregister(worker_id)
            return None
        except (CoordinatorUnavailable, CoordinatorError) as exc:
            logger.warning(
                "heartbeat failed, retrying at the next tick: %s", exc, extra={"action": "heartbeat_failed"}
            )
            return None
        received = time.monotonic()
        self.state.touch()
        statuses = {status.job_id: status for status in response.tasks}
        for task, progress in zip(tasks, sent, strict=True):
            status = statuses.get(task.job_id)
            if status is None:
                continue
            if status.lease_valid and progress.partial:
                task.ctx.partial_acknowledged(progress.partial_from + len(progress.partial))
            if not status.lease_valid:
                logger.warning(
                    "lease lost: stopping the task and dropping its result",
                    extra={"job_id": task.job_id, "action": "lease_lost"},
                )
                task.cancel(CancelReason.LEASE_LOST)
            elif status.cancel_requested:
                if task.ctx.cancel_reason is None:
                    logger.info(
                        "cancellation requested: stopping the task",
                        extra={"job_id": task.job_id, "action": "cancel_requested"},
                    )
                task.cancel(CancelReason.CANCEL_REQUESTED)
            else:
                task.lease_deadline = self.state.lease_deadline(received)
        self._on_drain(response.drain)
        return response


async def flush_partial(client: CoordinatorClient, state: AgentState, task: RunningTask) -> None:
    """Send the task's partial output not acknowledged yet, before its completion: chunks
    published after the last heartbeat would be lost otherwise. A failure is only logged."""
    worker_id = state.worker_id
    if worker_id is None or not state.cadence.partial_output:
        return
    while True:
        progress = task.progress(partial_output=True)
        if not progress.partial:
            return
        try:
            response = await client.heartbeat(worker_id, [progress])
        except (CoordinatorUnavailable, CoordinatorError, WorkerUnknown) as exc:
            logger.warning(
                "partial output not sent: %s", exc, extra={"job_id": task.job_id, "action": "partial_lost"}
            )
            return
        if not all(status.lease_valid for status in response.tasks):
            return
        task.ctx.partial_acknowledged(progress.partial_from + len(progress.partial))
