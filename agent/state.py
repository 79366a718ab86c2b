"""What the agent knows at any moment: its worker id, cadence, running tasks and contact times.

Shared by the run loop, the heartbeat loop, the task runner and the health endpoint; all of them
run on one event loop, so plain attributes are enough.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from taskpost.agent.handlers.base import CancelReason, TaskContext
from taskpost.agent.sendable import sendable_text
from taskpost.protocol import MAX_MESSAGE_LENGTH, Cadence, ClaimedTask, TaskProgress, WorkerType
from taskpost.protocol.tasks import MAX_PARTIAL_CHUNKS

DEFAULT_CADENCE = Cadence(heartbeat_interval_s=10.0, long_poll_s=20.0, lease_s=30.0)
"""Used until the coordinator sends its own (only before the first registration)."""


@dataclass(eq=False)
class RunningTask:
    """One claimed task, from the claim until its completion is queued."""

    claim: ClaimedTask
    ctx: TaskContext
    lease_deadline: float
    """``time.monotonic()`` at which the lease expires unless a heartbeat extends it."""
    claimed_at: float = field(default_factory=time.monotonic)
    """``time.monotonic()`` of the claim: the attempt's ``timeout_s`` counts from here."""
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    """Set together with ``ctx.cancel``: wakes the task runner on the loop."""

    @classmethod
    def from_claim(
        cls,
        claim: ClaimedTask,
        *,
        received: float,
        lease_s: float,
        worker_type: WorkerType = WorkerType.CPU,
        force_cpu: bool = False,
        files_roots: tuple[Path, ...] = (),
    ) -> RunningTask:
        """A task just claimed (``received`` is ``time.monotonic()`` when the claim was answered)."""
        ctx = TaskContext(
            job_id=claim.job_id,
            task_type=claim.type,
            attempt=claim.attempt,
            params=claim.params,
            inputs={},
            work_dir=Path(),
            worker_type=worker_type,
            force_cpu=force_cpu,
            meta=claim.meta,
            files_roots=files_roots,
        )
        return cls(claim=claim, ctx=ctx, lease_deadline=received + lease_s, claimed_at=received)

    @property
    def job_id(self) -> str:
        return self.claim.job_id

    def cancel(self, reason: CancelReason) -> None:
        self.ctx.cancel(reason)
        self.stop.set()

    def progress(self, *, partial_output: bool = False) -> TaskProgress:
        """The handler's latest progress, its message made sendable (escaped, cut); with
        ``partial_output`` (the coordinator takes it) also the chunks not acknowledged yet."""
        value, message = self.ctx.progress_snapshot()
        partial_from, partial = (
            self.ctx.partial_unacknowledged(MAX_PARTIAL_CHUNKS) if partial_output else (0, [])
        )
        return TaskProgress(
            job_id=self.claim.job_id,
            lease_token=self.claim.lease_token,
            progress=value,
            message=None if message is None else sendable_text(message, MAX_MESSAGE_LENGTH),
            partial=partial,
            partial_from=partial_from,
        )


@dataclass
class AgentState:
    """Mutable state of one agent process."""

    worker_id: str | None = None
    cadence: Cadence = field(default_factory=DEFAULT_CADENCE.model_copy)
    running: dict[str, RunningTask] = field(default_factory=dict)
    draining: bool = False
    """The coordinator asked this agent to stop claiming."""
    stopping: bool = False
    """A shutdown signal arrived."""
    started_at: float = field(default_factory=time.monotonic)
    last_contact: float | None = None
    """``time.monotonic()`` of the last request the coordinator answered."""
    reachable: bool = False
    """Whether the latest exchange with the coordinator got an answer (a network error or a 5xx
    is no answer): false from a failed claim, heartbeat or completion until the next success."""
    last_contact_at: datetime | None = None
    last_poll_at: datetime | None = None
    """Wall-clock time of the last answered claim."""
    slot_freed: asyncio.Event = field(default_factory=asyncio.Event)

    def touch(self, *, poll: bool = False) -> None:
        """Record a successful exchange with the coordinator."""
        self.reachable = True
        self.last_contact = time.monotonic()
        self.last_contact_at = datetime.now(UTC)
        if poll:
            self.last_poll_at = self.last_contact_at

    def exchanged(self, answered: bool) -> None:
        """Record the outcome of any request: answered (even with a refusal) or not."""
        self.reachable = answered

    def lease_deadline(self, sent_at: float) -> float:
        """Local deadline of a lease granted or extended by a request sent at ``sent_at``."""
        return sent_at + self.cadence.lease_s

    def free_slots(self, max_concurrent: int) -> int:
        return max(0, max_concurrent - len(self.running))

    def finish(self, job_id: str) -> None:
        """Forget a task and wake the claim loop."""
        self.running.pop(job_id, None)
        self.slot_freed.set()
