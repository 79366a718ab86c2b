"""Models of the admin API: API keys, statistics, agents and purges."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    StrictBool,
    StrictFloat,
    ValidationInfo,
    field_validator,
)
from pydantic_core import PydanticCustomError

from taskpost.protocol.enums import Role, WorkerType
from taskpost.protocol.fields import MAX_NAME_LENGTH, TaskType
from taskpost.protocol.request import RequestModel

NAMESPACE_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,63}$"
DEFAULT_NAMESPACE = "default"


MAX_KEY_LIFETIME_S = 10 * 365 * 86400.0
MAX_ROTATION_GRACE_S = 90 * 86400.0

MAX_NAMESPACES = {Role.ADMIN: 0, Role.CLIENT: 1, Role.METRICS: 0}
"""How many namespaces a new key of a role may name (a worker's are not limited)."""


def _namespaces_per_role() -> list[JsonValue]:
    return [
        {
            "if": {"properties": {"role": {"const": role.value}}, "required": ["role"]},
            "then": {"properties": {"namespaces": {"maxItems": most}}},
        }
        for role, most in MAX_NAMESPACES.items()
    ]


def _task_types_for_workers_only() -> JsonValue:
    return {
        "if": {"properties": {"role": {"not": {"const": Role.WORKER.value}}}, "required": ["role"]},
        "then": {"properties": {"task_types": {"maxItems": 0}}},
    }


class KeyCreate(RequestModel):
    model_config = ConfigDict(
        json_schema_extra={"allOf": [*_namespaces_per_role(), _task_types_for_workers_only()]}
    )

    role: Role
    name: str | None = Field(default=None, max_length=MAX_NAME_LENGTH)
    namespaces: list[Annotated[str, Field(pattern=NAMESPACE_PATTERN, max_length=64)]] = Field(
        default_factory=list, max_length=100
    )
    """client: the one namespace whose jobs the key sees (default ``default``); worker: the
    namespaces whose tasks it may claim (empty: all); admin: must be empty (admins see all)."""

    @field_validator("namespaces")
    @classmethod
    def _fit_role(cls, namespaces: list[str], info: ValidationInfo) -> list[str]:
        role = info.data.get("role")
        most = MAX_NAMESPACES.get(role) if isinstance(role, Role) else None
        if most == 0 and namespaces:
            raise PydanticCustomError(
                "namespaces_for_role",
                "an admin key sees every namespace and a metrics key none: give it none",
            )
        if most is not None and len(namespaces) > most:
            raise PydanticCustomError("namespaces_for_role", "a client key belongs to exactly one namespace")
        return namespaces

    expires_in_s: StrictFloat | None = Field(default=None, gt=0, le=MAX_KEY_LIFETIME_S)
    """Seconds until the key stops working (answers 401 ``key_expired``); none: never."""
    task_types: list[TaskType] = Field(default_factory=list, max_length=100)
    """worker keys only: the job types the key may register and claim (empty: all)."""

    @field_validator("task_types")
    @classmethod
    def _task_types_for_workers(cls, task_types: list[str], info: ValidationInfo) -> list[str]:
        if task_types and info.data.get("role") is not Role.WORKER:
            raise PydanticCustomError("task_types_for_role", "only a worker key is limited to task types")
        return sorted(set(task_types))


class KeyPublic(BaseModel):
    id: str
    prefix: str
    role: Role
    name: str | None
    namespaces: list[str] = []
    """client: its one namespace; worker: the namespaces it serves (empty: all); admin: empty."""
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None
    expires_at: datetime | None = None
    """When the key stops working; none: never."""
    task_types: list[str] = []
    """worker keys: the job types it may register and claim (empty: all)."""
    rotated_at: datetime | None = None
    """When the secret was last replaced (``POST /api/v1/keys/{id}/rotate``)."""
    previous_expires_at: datetime | None = None
    """Until when the secret before the last rotation still works (none: it no longer does)."""


class KeyRotate(RequestModel):
    grace_s: StrictFloat = Field(default=86400.0, ge=0, le=MAX_ROTATION_GRACE_S)
    """How long the old secret keeps working beside the new one."""


class KeyCreated(BaseModel):
    key: str
    """The secret, shown this once; the coordinator keeps only its hash."""
    info: KeyPublic


class WorkerPublic(BaseModel):
    id: str
    name: str | None
    worker_type: WorkerType
    task_types: list[str]
    labels: list[str]
    max_concurrent: int
    version: str | None
    host: str | None
    registered_at: datetime
    last_seen_at: datetime
    running_tasks: int
    draining: bool
    alive: bool
    namespaces: list[str] = []
    """The namespaces its key serves (empty: all)."""
    allowed_task_types: list[str] = []
    """The job types its key is limited to (empty: all)."""


class QueueCount(BaseModel):
    type: str
    priority: str
    state: str
    count: int


class Stats(BaseModel):
    counts: list[QueueCount]
    totals: dict[str, int]
    workers: list[WorkerPublic]


class Health(BaseModel):
    status: str
    database: str
    version: str
    workers_alive: int


class FinishedState(StrEnum):
    """A state a job never leaves by itself (the terminal states): what retention and purges delete."""

    COMPLETED = "completed"
    DEAD = "dead"
    CANCELLED = "cancelled"


MAX_PURGE_AGE_S = 100 * 365 * 86400


class PurgeRequest(RequestModel):
    """Delete finished jobs now (``POST /admin/purge``), with their events and the blobs only they
    named; ``?namespace=`` narrows it to one namespace."""

    states: list[FinishedState] = Field(min_length=1, max_length=3)
    older_than_s: StrictFloat = Field(ge=0, le=MAX_PURGE_AGE_S)
    """Only jobs that ended at least this long ago (seconds)."""
    type: TaskType | None = None
    """Only jobs of this type."""
    dry_run: StrictBool = False
    """Count the jobs that would be deleted, and delete nothing."""


class PurgeResult(BaseModel):
    dry_run: bool
    ended_before: datetime
    """The cutoff: the jobs counted ended at this moment or earlier."""
    jobs: dict[str, int]
    """Per state asked for: how many jobs were deleted (on a dry run, would be)."""
    more: bool = False
    """True when this call stopped at its limit of jobs per request: call again for the rest."""


class RequeueableState(StrEnum):
    FAILED = "failed"
    DEAD = "dead"
    CANCELLED = "cancelled"


MAX_BULK_JOBS = 1000
"""Jobs one bulk call changes at most; ``BulkResult.more`` says when to call again."""


class BulkRequeue(RequestModel):
    """``POST /api/v1/queues/requeue``: put ended jobs back in the queue, like ``rq requeue --all``."""

    states: list[RequeueableState] = Field(min_length=1, max_length=3)
    type: TaskType | None = None
    """Only jobs of this type (default: every type)."""
    dry_run: StrictBool = False


class QueueEmpty(RequestModel):
    """``POST /api/v1/queues/empty``: cancel every queued job of a type, like ``rq empty``."""

    type: TaskType
    include_scheduled: StrictBool = False
    """Cancel the type's scheduled jobs as well."""
    dry_run: StrictBool = False


class BulkResult(BaseModel):
    dry_run: bool
    count: int
    """Jobs changed (on a dry run, that would be)."""
    more: bool = False
    """True when this call stopped at MAX_BULK_JOBS: call again for the rest."""
