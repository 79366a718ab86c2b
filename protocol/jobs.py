"""Models of the client-facing job API (``/api/v1/jobs``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field, JsonValue, StrictBool, StrictFloat, model_validator

from taskpost.protocol.enums import JobState, Priority, WorkerType
from taskpost.protocol.fields import (
    MAX_ID_LENGTH,
    MAX_INPUTS,
    MAX_LABELS,
    FileName,
    Identifier,
    JsonInt,
    Label,
    TaskType,
)
from taskpost.protocol.request import RequestModel

LOCAL_PATH_PARAM = "local_path"
"""A job param naming a file on the agent's machine instead of an uploaded input."""
FILES_ROOT_LABEL = "files-root:"
"""Prefix of the label an agent carries for each directory it lets jobs read by local_path."""


class RetryPolicy(RequestModel):
    """Capped exponential backoff with jitter between attempts."""

    base_s: StrictFloat = Field(default=1.0, ge=0, le=86400)
    factor: StrictFloat = Field(default=2.0, ge=1, le=100)
    cap_s: StrictFloat = Field(default=300.0, ge=0, le=7 * 86400)
    jitter: StrictBool = True


class InputRef(RequestModel):
    """An input of a job: a blob uploaded earlier through ``POST /api/v1/uploads``."""

    name: FileName
    """The file's name in the agent's input directory: one path segment, not ``.`` or ``..``."""
    upload_id: Identifier


MAX_CHAIN_FAN_OUT = 8
"""The most steps in one ``then`` list: each becomes a child job when its parent completes."""
MAX_CHAIN_DEPTH = 4
MAX_CHAIN_STEPS = 16
"""The most steps in a whole chain, nested ones included."""


class ChainStep(RequestModel):
    """A job to create when its parent completes, with the parent's outputs as its inputs."""

    type: TaskType
    params: dict[str, Any] = Field(default_factory=dict)
    priority: Priority | None = Field(default=None, description="By default the parent's.")
    timeout_s: StrictFloat | None = Field(default=None, gt=0, le=7 * 86400)
    max_attempts: JsonInt | None = Field(default=None, ge=1, le=100)
    worker_type: WorkerType | None = None
    labels: list[Label] = Field(default_factory=list, max_length=MAX_LABELS)
    meta: dict[str, Any] = Field(default_factory=dict)
    webhook_url: str | None = Field(default=None, min_length=1, max_length=2000)
    then: list[ChainStep] = Field(
        default_factory=list,
        max_length=MAX_CHAIN_FAN_OUT,
        description="Jobs to create when this one completes.",
    )


def chain_shape_problem(steps: list[ChainStep]) -> str | None:
    """Why a chain is too deep or too long, or None."""

    def walk(level: list[ChainStep], depth: int) -> tuple[int, int]:
        count, deepest = 0, depth if level else depth - 1
        for step in level:
            sub_count, sub_depth = walk(step.then, depth + 1)
            count += 1 + sub_count
            deepest = max(deepest, sub_depth)
        return count, deepest

    count, depth = walk(steps, 1)
    if depth > MAX_CHAIN_DEPTH:
        return f"then is nested {depth} deep; at most {MAX_CHAIN_DEPTH} levels"
    if count > MAX_CHAIN_STEPS:
        return f"then has {count} steps in all; at most {MAX_CHAIN_STEPS}"
    return None


class JobCreate(RequestModel):
    """What a client submits."""

    type: TaskType
    params: dict[str, Any] = Field(default_factory=dict)
    priority: Priority = Priority.DEFAULT
    timeout_s: StrictFloat | None = Field(default=None, gt=0, le=7 * 86400, description="Limit per attempt.")
    total_timeout_s: StrictFloat | None = Field(
        default=None, gt=0, le=30 * 86400, description="Limit across all attempts."
    )
    max_attempts: JsonInt | None = Field(default=None, ge=1, le=100)
    retry: RetryPolicy | None = None
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=MAX_ID_LENGTH)
    worker_type: WorkerType | None = Field(default=None, description="Only agents of this type.")
    labels: list[Label] = Field(
        default_factory=list, max_length=MAX_LABELS, description="Agents must carry every label."
    )
    inputs: list[InputRef] = Field(default_factory=list, max_length=MAX_INPUTS)
    meta: dict[str, Any] = Field(default_factory=dict)
    run_at: datetime | None = Field(default=None, description="Not before this time (with a time zone).")
    delay_s: StrictFloat | None = Field(
        default=None, ge=0, le=366 * 86400, description="Not before this many seconds from now."
    )
    cache: StrictBool | None = Field(
        default=None,
        description="Complete at once with the result of an equal completed job (same type, handler "
        "version, params and input digests) in this namespace, if there is one.",
    )
    webhook_url: str | None = Field(
        default=None,
        min_length=1,
        max_length=2000,
        description="POSTed a signed summary (header X-Taskpost-Signature) when the job ends.",
    )
    then: list[ChainStep] = Field(
        default_factory=list,
        max_length=MAX_CHAIN_FAN_OUT,
        description="Jobs to create when this one completes, each with its outputs as inputs.",
    )

    @model_validator(mode="after")
    def _chain_fits(self) -> JobCreate:
        if problem := chain_shape_problem(self.then):
            raise ValueError(problem)
        return self


class JobBatchCreate(RequestModel):
    jobs: list[JobCreate] = Field(min_length=1, max_length=1000)


class FileInfo(BaseModel):
    name: str
    size: int
    sha256: str


class JobError(BaseModel):
    message: str
    kind: str | None = None
    traceback: str | None = None
    retryable: bool = True


class JobPublic(BaseModel):
    """A job as clients see it."""

    id: str
    namespace: str = "default"
    type: str
    state: JobState
    priority: Priority
    params: dict[str, Any]
    meta: dict[str, Any]
    created_at: datetime
    started_at: datetime | None = None
    ended_at: datetime | None = None
    available_at: datetime | None = None
    attempts: int
    max_attempts: int
    timeout_s: float | None = None
    total_timeout_s: float | None = None
    worker_type: WorkerType | None = None
    labels: list[str] = []
    idempotency_key: str | None = None
    worker_id: str | None = None
    cancel_requested: bool = False
    progress: float | None = None
    progress_message: str | None = None
    result: Any = None
    error: JobError | None = None
    inputs: list[FileInfo] = []
    outputs: list[FileInfo] = []
    cached_from: str | None = None
    """The completed job whose result and outputs this one took (submitted with ``cache``)."""
    webhook_url: str | None = None
    parent_id: str | None = None
    """The job whose completion created this one (a step of its ``then``)."""
    children: list[str] = []
    """The jobs this one's completion created, in the order of its ``then``."""
    then: list[dict[str, Any]] = []
    """The steps still to create when this job completes."""


class JobSubmitted(BaseModel):
    job: JobPublic
    created: bool
    """False when an earlier job with the same idempotency key was returned."""
    warnings: list[str] = []
    """Things the client should know, e.g. that no agent runs this job type yet."""


class JobBatchSubmitted(BaseModel):
    jobs: list[JobSubmitted]


class JobPage(BaseModel):
    jobs: list[JobPublic]
    next_cursor: str | None = None


class JobEventPublic(BaseModel):
    at: datetime
    kind: str
    attempt: int | None = None
    worker_id: str | None = None
    detail: str | None = None
    id: int | None = None
    data: JsonValue = None
    """What a stream kind (``state``, ``progress``, ``partial``) carries."""


class UploadPublic(BaseModel):
    upload_id: str
    size: int
    sha256: str
