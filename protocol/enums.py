"""Enumerations shared by the coordinator, the agents and clients."""

from __future__ import annotations

from enum import StrEnum


class JobState(StrEnum):
    """Where a job is in its lifecycle.

    QUEUED -> PROCESSING -> COMPLETED; a failed attempt goes to FAILED and, after its
    backoff, back to QUEUED, or to DEAD (the dead-letter state) once attempts run out. A job
    submitted with ``run_at`` or ``delay_s`` waits in SCHEDULED until then, and is QUEUED when due.
    """

    SCHEDULED = "scheduled"
    QUEUED = "queued"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"
    DEAD = "dead"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATES


TERMINAL_STATES = frozenset({JobState.COMPLETED, JobState.DEAD, JobState.CANCELLED})
REQUEUEABLE_STATES = frozenset({JobState.FAILED, JobState.DEAD, JobState.CANCELLED})


class Priority(StrEnum):
    """Three priority levels; FIFO inside each level."""

    HIGH = "high"
    DEFAULT = "default"
    LOW = "low"

    @property
    def rank(self) -> int:
        """Larger ranks are claimed first."""
        return _PRIORITY_RANK[self]

    @classmethod
    def from_rank(cls, rank: int) -> Priority:
        return _RANK_PRIORITY[rank]


_PRIORITY_RANK = {Priority.HIGH: 2, Priority.DEFAULT: 1, Priority.LOW: 0}
_RANK_PRIORITY = {rank: priority for priority, rank in _PRIORITY_RANK.items()}


class WorkerType(StrEnum):
    GPU = "gpu"
    CPU = "cpu"


class Role(StrEnum):
    """What an API key may do.

    admin: everything; client: submit and manage jobs; worker: register, claim and run tasks;
    metrics: read ``/metrics`` and nothing else (for Prometheus and autoscalers).
    """

    ADMIN = "admin"
    CLIENT = "client"
    WORKER = "worker"
    METRICS = "metrics"


class Outcome(StrEnum):
    """How an attempt ended, as the agent reports it."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
