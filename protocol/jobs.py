"""Models of the client-facing job API (``/api/v1/jobs``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field, JsonValue, StrictBool, StrictFloat

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
