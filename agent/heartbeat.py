"""The heartbeat: one request per interval for all running tasks, and what its answer means."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from taskpost.agent.client import CoordinatorClient
from taskpost.agent.errors import CoordinatorError, CoordinatorUnavailable, WorkerUnknown
from taskpost.agent.handlers.base import CancelReason
from taskpost.agent.state import AgentState
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
        """Beat every ``cadence.heartbeat_interval_s`` until cancelled; failures wait for the next tick."""
        while True:
            await asyncio.sleep(self.state.cadence.heartbeat_interval_s)
            await self.beat()

    async def beat(self) -> HeartbeatResponse | None:
        worker_id = self.state.worker_id
        if worker_id is None:
            return None
        tasks = list(self.state.running.values())
        try:
            response = await self.client.heartbeat(worker_id, [task.progress() for task in tasks])
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
        for task in tasks:
            status = statuses.get(task.job_id)
            if status is None:
                continue
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
