"""Models of the agent-facing API (``/api/v1/workers`` and ``/api/v1/tasks``).

An agent registers, then long-polls ``claim``. Each claimed task carries a lease token: only
its holder may download the task's inputs, upload outputs, heartbeat and complete it.
Heartbeats are per agent and extend every lease the agent holds in one request.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from protocol.enums import Outcome, Priority, WorkerType

LEASE_HEADER = "X-Lease-Token"
SHA256_HEADER = "X-Content-SHA256"


class WorkerRegister(BaseModel):
    name: str | None = Field(default=None, max_length=200)
    worker_type: WorkerType = WorkerType.CPU
    task_types: list[str] = Field(min_length=1)
    labels: list[str] = Field(default_factory=list)
    max_concurrent: int = Field(default=1, ge=1, le=1024)
    version: str | None = None
    host: str | None = None


class Cadence(BaseModel):
    """Timings the coordinator chooses for its agents."""

    heartbeat_interval_s: float
    long_poll_s: float
    lease_s: float


class WorkerRegistered(BaseModel):
    worker_id: str
    cadence: Cadence


class InputFile(BaseModel):
    name: str
    size: int
    sha256: str


class ClaimedTask(BaseModel):
    job_id: str
    type: str
    params: dict[str, Any]
    priority: Priority
    attempt: int
    max_attempts: int
    timeout_s: float | None
    lease_token: str
    lease_expires_at: datetime
    inputs: list[InputFile] = []
    meta: dict[str, Any] = {}


class TaskCompletion(BaseModel):
    """The end of one attempt, as the agent that held the lease reports it."""

    job_id: str
    lease_token: str
    outcome: Outcome
    result: Any = None
    error_message: str | None = None
    error_kind: str | None = None
    traceback: str | None = None
    retryable: bool = True
    retry_delay_s: float | None = Field(default=None, ge=0)
    """A handler's own wish for the delay before the next attempt."""


class ClaimRequest(BaseModel):
    max_tasks: int = Field(default=1, ge=0, le=256)
    wait_s: float | None = Field(default=None, ge=0, le=60)
    """How long to hold when nothing is queued; capped by the server's long-poll setting."""
    completions: list[TaskCompletion] = Field(default_factory=list, max_length=1024)
    """Attempts finished since the last request, acknowledged before anything is claimed."""


class CompletionAck(BaseModel):
    job_id: str
    accepted: bool
    """False for a stale lease: the completion was recorded but not applied."""
    state: str | None = None
    code: str | None = None
    message: str | None = None


class ClaimResponse(BaseModel):
    tasks: list[ClaimedTask]
    acks: list[CompletionAck] = []
    drain: bool = False


class CompleteRequest(BaseModel):
    completions: list[TaskCompletion] = Field(min_length=1, max_length=1024)


class CompleteResponse(BaseModel):
    acks: list[CompletionAck]


class TaskProgress(BaseModel):
    job_id: str
    lease_token: str
    progress: float | None = Field(default=None, ge=0, le=1)
    message: str | None = Field(default=None, max_length=1000)


class HeartbeatRequest(BaseModel):
    tasks: list[TaskProgress] = Field(default_factory=list, max_length=1024)


class TaskLeaseStatus(BaseModel):
    job_id: str
    lease_valid: bool
    """False once the lease is lost: the agent must stop the task and drop its result."""
    cancel_requested: bool = False
    lease_expires_at: datetime | None = None


class HeartbeatResponse(BaseModel):
    tasks: list[TaskLeaseStatus]
    drain: bool = False
    """The coordinator asks the agent to stop claiming."""


class ReleaseRequest(BaseModel):
    """Give leases back unfinished (an agent shutting down): the tasks are queued again at once."""

    tasks: list[TaskProgress] = Field(min_length=1)
    reason: str = "released by worker"
