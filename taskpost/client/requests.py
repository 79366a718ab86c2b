"""What each client operation sends, built once for the sync and the async client alike.

A ``Call`` is a request not yet sent: its method, path (under ``/api/v1``), query, JSON body or
multipart files, and whether resending it after a lost answer is harmless.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel

from taskpost.client.errors import error_from_response
from taskpost.protocol import API_PREFIX, JobBatchCreate, JobCreate, JobState, Priority, WorkerType

FileSource = Path | str | bytes
"""A file to upload: a path on this machine, or its bytes."""

Model = TypeVar("Model", bound=BaseModel)


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    query: Mapping[str, str | int | float] = field(default_factory=dict)
    json: Any = None
    form: Mapping[str, str] = field(default_factory=dict)
    files: Sequence[tuple[str, FileSource]] = ()
    resendable: bool = True
    """Safe to send again when the answer was lost (a read, or a submit with its idempotency key)."""
    extra_wait_s: float = 0.0
    """How much longer than the client's timeout the coordinator may hold the answer."""

    @property
    def url(self) -> str:
        return API_PREFIX + self.path

    def multipart(self, stack: ExitStack) -> list[tuple[str, tuple[str | None, IO[bytes] | bytes | str]]]:
        """The form fields and files, opened for one attempt (``stack`` closes them)."""
        parts: list[tuple[str, tuple[str | None, IO[bytes] | bytes | str]]] = [
            (name, (None, value)) for name, value in self.form.items()
        ]
        for name, source in self.files:
            if isinstance(source, bytes):
                parts.append(("file", (name, source)))
            else:
                opened = Path(source).open("rb")  # noqa: SIM115 (closed by ``stack``)
                parts.append(("file", (name, stack.enter_context(opened))))
        return parts


def new_idempotency_key() -> str:
    return uuid.uuid4().hex


def job_spec(
    type: str,
    params: Mapping[str, Any] | None = None,
    *,
    priority: Priority | str = Priority.DEFAULT,
    timeout_s: float | None = None,
    max_attempts: int | None = None,
    idempotency_key: str | None = None,
    labels: Sequence[str] = (),
    worker_type: WorkerType | str | None = None,
    meta: Mapping[str, Any] | None = None,
) -> JobCreate:
    """A job to submit, checked here as the coordinator will; it always has an idempotency key."""
    return JobCreate.model_validate(
        {
            "type": type,
            "params": dict(params or {}),
            "priority": Priority(priority),
            "timeout_s": None if timeout_s is None else float(timeout_s),
            "max_attempts": max_attempts,
            "idempotency_key": idempotency_key or new_idempotency_key(),
            "labels": list(labels),
            "worker_type": None if worker_type is None else WorkerType(worker_type),
            "meta": dict(meta or {}),
        }
    )


def _dump(spec: JobCreate) -> dict[str, Any]:
    return spec.model_dump(mode="json", exclude_none=True)


def submit(spec: JobCreate, files: Mapping[str, FileSource] | None = None) -> Call:
    """One job; with ``files`` (input name -> path or bytes), a multipart submit."""
    if files:
        form = {"job": spec.model_dump_json(exclude_none=True)}
        return Call("POST", "/jobs", form=form, files=tuple(files.items()))
    return Call("POST", "/jobs", json=_dump(spec))


def submit_many(specs: Sequence[JobCreate]) -> Call:
    """Several jobs in one request; each without an idempotency key gets one."""
    keyed = [
        spec if spec.idempotency_key else spec.model_copy(update={"idempotency_key": new_idempotency_key()})
        for spec in specs
    ]
    batch = JobBatchCreate(jobs=keyed)
    return Call("POST", "/jobs/batch", json=batch.model_dump(mode="json", exclude_none=True))


def _job_path(job_id: str, *rest: str) -> str:
    return "/".join(["/jobs", quote(job_id, safe=""), *(quote(part, safe="") for part in rest)])


def get(job_id: str, wait_s: float = 0.0) -> Call:
    if wait_s > 0:
        return Call("GET", _job_path(job_id), query={"wait_s": wait_s}, extra_wait_s=wait_s)
    return Call("GET", _job_path(job_id))


def list_page(state: JobState | str | None, type: str | None, limit: int, cursor: str | None) -> Call:
    query: dict[str, str | int | float] = {"limit": limit}
    if state is not None:
        query["state"] = JobState(state).value
    if type is not None:
        query["type"] = type
    if cursor is not None:
        query["cursor"] = cursor
    return Call("GET", "/jobs", query=query)


def events(job_id: str) -> Call:
    return Call("GET", _job_path(job_id, "events"))


def cancel(job_id: str) -> Call:
    return Call("POST", _job_path(job_id, "cancel"), resendable=False)


def requeue(job_id: str) -> Call:
    return Call("POST", _job_path(job_id, "requeue"), resendable=False)


def output(job_id: str, name: str) -> Call:
    return Call("GET", _job_path(job_id, "outputs", name))


def stats() -> Call:
    return Call("GET", "/stats")


def parsed(model: type[Model], response: httpx.Response) -> Model:
    """The answer as ``model``, or the error it carries raised as a TaskpostError."""
    if response.is_error:
        raise error_from_response(response)
    return model.model_validate_json(response.content)
