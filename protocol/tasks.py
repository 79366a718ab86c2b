"""Models of the agent-facing API (``/api/v1/workers`` and ``/api/v1/tasks``).

An agent registers, then long-polls ``claim``. Each claimed task carries a lease token: only
its holder may download the task's inputs, upload outputs, heartbeat and complete it.
Heartbeats are per agent and extend every lease the agent holds in one request.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field, JsonValue, StrictBool, StrictFloat, field_validator

from taskpost.protocol.enums import Outcome, Priority, WorkerType
from taskpost.protocol.fields import (
    MAX_ERROR_TEXT_LENGTH,
    MAX_LABELS,
    MAX_MESSAGE_LENGTH,
    MAX_NAME_LENGTH,
    MAX_TASK_TYPES,
    Identifier,
    JsonInt,
    Label,
    TaskType,
)
from taskpost.protocol.request import RequestModel
from taskpost.protocol.types import HandlerSchema


def _keys_are_task_types(schema: dict[str, Any]) -> None:
    """Say in the JSON Schema that every key is a task type: pydantic writes a constrained key as
    ``patternProperties``, which leaves keys outside the pattern unconstrained."""
    patterns = schema.pop("patternProperties", None)
    if not patterns:
        return
    [(pattern, value_schema)] = patterns.items()
    schema["propertyNames"] = {**schema.get("propertyNames", {}), "pattern": pattern}
    schema["additionalProperties"] = value_schema


LEASE_HEADER = "X-Lease-Token"
SHA256_HEADER = "X-Content-SHA256"
SHA256_PATTERN = r"^[0-9a-fA-F]{64}$"
"""A declared digest: the body's SHA-256 in hex."""
RESERVED_TASK_TYPES = frozenset({"batch"})
"""Names no job type may have: ``POST /api/v1/jobs/batch`` is the batch submit, not the short
form of a submit of type ``batch``."""


class WorkerRegister(RequestModel):
    name: str | None = Field(default=None, max_length=MAX_NAME_LENGTH)
    worker_type: WorkerType = WorkerType.CPU
    task_types: list[TaskType] = Field(min_length=1, max_length=MAX_TASK_TYPES)
    """The job types this agent runs; each an identifier such as ``transcription``."""
    labels: list[Label] = Field(default_factory=list, max_length=MAX_LABELS)
    param_schemas: dict[TaskType, HandlerSchema] = Field(
        default_factory=dict, max_length=MAX_TASK_TYPES, json_schema_extra=_keys_are_task_types
    )
    """The parameters each served type takes (``taskpost.protocol.types``); a type left out is
    submitted unchecked, as from agents older than the registry."""
    max_concurrent: JsonInt = Field(default=1, ge=1, le=1024)
    version: str | None = Field(default=None, max_length=100)
    host: str | None = Field(default=None, max_length=255)

    @field_validator("task_types")
    @classmethod
    def _no_reserved_type(cls, value: list[str]) -> list[str]:
        for name in value:
            if name in RESERVED_TASK_TYPES:
                raise ValueError(f"{name!r} cannot be a task type: /api/v1/jobs/{name} is another endpoint")
        return value


MAX_PARTIAL_CHUNKS = 200
"""Partial output chunks per task in one heartbeat."""


class Cadence(BaseModel):
    """Timings the coordinator chooses for its agents."""

    heartbeat_interval_s: float
    long_poll_s: float
    lease_s: float
    progress_interval_s: float = 10.0
    """How soon an agent reports a changed progress, message or partial output (sooner than
    the heartbeat); 10 s from a coordinator that does not say."""
    partial_output: bool = False
    """The coordinator takes ``TaskProgress.partial``; older ones refuse the field."""


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


class TaskCompletion(RequestModel):
    """The end of one attempt, as the agent that held the lease reports it."""

    job_id: Identifier
    lease_token: Identifier
    outcome: Outcome
    result: Any = None
    error_message: str | None = Field(default=None, max_length=MAX_ERROR_TEXT_LENGTH)
    error_kind: str | None = Field(default=None, max_length=MAX_NAME_LENGTH)
    traceback: str | None = Field(default=None, max_length=MAX_ERROR_TEXT_LENGTH)
    retryable: StrictBool = True
    retry_delay_s: StrictFloat | None = Field(default=None, ge=0)
    """A handler's own wish for the delay before the next attempt."""


class ClaimRequest(RequestModel):
    max_tasks: JsonInt = Field(default=1, ge=0, le=256)
    wait_s: StrictFloat | None = Field(default=None, ge=0, le=60)
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


class CompleteRequest(RequestModel):
    completions: list[TaskCompletion] = Field(min_length=1, max_length=1024)


class CompleteResponse(BaseModel):
    acks: list[CompletionAck]


class TaskProgress(RequestModel):
    job_id: Identifier
    lease_token: Identifier
    progress: StrictFloat | None = Field(default=None, ge=0, le=1)
    message: str | None = Field(default=None, max_length=MAX_MESSAGE_LENGTH)
    partial: list[JsonValue] = Field(default_factory=list, max_length=MAX_PARTIAL_CHUNKS)
    """Partial output chunks (sent only when ``Cadence.partial_output``); the first one is this
    attempt's chunk number ``partial_from``; chunks the coordinator already has are skipped."""
    partial_from: JsonInt = Field(default=0, ge=0)


class HeartbeatRequest(RequestModel):
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


RELEASE_DECLINED = "declined"
"""The release reason of an agent that cannot run a task: its relative ``local_path`` is under
none of the agent's files roots. The task is queued again for other agents (never this one),
without using an attempt; once every live agent that could run it has declined, it is dead with
the error kind ``not_found``."""


class ReleaseRequest(RequestModel):
    """Give leases back unfinished (an agent shutting down, or declining a task): the tasks are
    queued again at once, without using an attempt."""

    tasks: list[TaskProgress] = Field(min_length=1, max_length=1024)
    reason: str = Field(default="released by worker", max_length=MAX_MESSAGE_LENGTH)
    """Free text for the job's events; ``RELEASE_DECLINED`` (``declined``) declines the tasks."""
