"""What each client operation sends, built once for the sync and the async client alike.

A ``Call`` is a request not yet sent: its method, path (under ``/api/v1``), query, JSON body or
multipart files, and whether resending it after a lost answer is harmless.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, TypeAdapter, ValidationError

from taskpost.client.errors import InvalidParams, error_from_response
from taskpost.protocol import (
    API_PREFIX,
    ChainStep,
    JobBatchCreate,
    JobCreate,
    JobState,
    KeyCreate,
    Priority,
    RetryPolicy,
    Role,
    WorkerType,
)
from taskpost.protocol.admin import (
    BulkRequeue,
    FinishedState,
    KeyRotate,
    PurgeRequest,
    QueueEmpty,
    RequeueableState,
)

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
    total_timeout_s: float | None = None,
    max_attempts: int | None = None,
    retry: RetryPolicy | None = None,
    idempotency_key: str | None = None,
    labels: Sequence[str] = (),
    worker_type: WorkerType | str | None = None,
    meta: Mapping[str, Any] | None = None,
    run_at: datetime | None = None,
    delay_s: float | None = None,
    cache: bool | None = None,
    webhook_url: str | None = None,
    then: Sequence[ChainStep | Mapping[str, Any]] = (),
) -> JobCreate:
    """A job to submit, checked here as the coordinator will; it always has an idempotency key.

    ``run_at`` (a time with a zone) or ``delay_s`` hold the job until then; ``cache`` lets an
    equal completed job answer it; ``webhook_url`` is POSTed a signed summary when it ends;
    ``then`` lists jobs to create when it completes (see ``chain_step``), each with its outputs
    as inputs.
    """
    return checked(
        JobCreate,
        {
            "type": type,
            "params": dict(params or {}),
            "priority": priority,
            "timeout_s": _seconds(timeout_s),
            "total_timeout_s": _seconds(total_timeout_s),
            "max_attempts": max_attempts,
            "retry": retry,
            "idempotency_key": idempotency_key or new_idempotency_key(),
            "labels": list(labels),
            "worker_type": worker_type,
            "meta": dict(meta or {}),
            "run_at": run_at,
            "delay_s": _seconds(delay_s),
            "cache": cache,
            "webhook_url": webhook_url,
            "then": [_step_data(step) for step in then],
        },
    )


def chain_step(
    type: str,
    params: Mapping[str, Any] | None = None,
    *,
    then: Sequence[ChainStep | Mapping[str, Any]] = (),
    **fields: Any,
) -> ChainStep:
    """A job to create when its parent completes: ``job_spec(..., then=[chain_step("analyze",
    {...})])``. ``fields`` are ChainStep's others (priority, timeout_s, max_attempts, labels, ...)."""
    data = {"type": type, "params": dict(params or {}), "then": [_step_data(s) for s in then], **fields}
    return checked(ChainStep, data)


def _step_data(step: ChainStep | Mapping[str, Any]) -> Any:
    return step.model_dump(exclude_defaults=True) if isinstance(step, ChainStep) else dict(step)


def checked(model: type[Model], data: Mapping[str, Any]) -> Model:
    """``data`` as ``model``; InvalidParams naming each bad field, as the coordinator's 422 would."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = [
            {"field": ".".join(str(part) for part in error["loc"]) or "body", "message": error["msg"]}
            for error in exc.errors()
        ]
        summary = "; ".join(f"{p['field']}: {p['message']}" for p in problems[:5])
        raise InvalidParams(
            f"invalid request: {summary}", code="invalid_params", details={"errors": problems}
        ) from None


def _seconds(value: float | None) -> float | None:
    """Whole numbers too: the protocol's strict floats refuse an ``int``."""
    return None if value is None else float(value)


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


def get(job_id: str, wait_s: float = 0.0, seen_state: JobState | None = None) -> Call:
    if wait_s > 0:
        query: dict[str, str | int | float] = {"wait_s": wait_s}
        if seen_state is not None:
            query["seen_state"] = seen_state.value
        return Call("GET", _job_path(job_id), query=query, extra_wait_s=wait_s)
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


def cancel(job_id: str) -> Call:
    return Call("POST", _job_path(job_id, "cancel"), resendable=False)


def requeue(job_id: str) -> Call:
    return Call("POST", _job_path(job_id, "requeue"), resendable=False)


def output(job_id: str, name: str) -> Call:
    return Call("GET", _job_path(job_id, "outputs", name))


def stats(namespace: str | None = None) -> Call:
    return Call("GET", "/stats", query={"namespace": namespace} if namespace else {})


def types() -> Call:
    return Call("GET", "/types")


def events(job_id: str) -> Call:
    return Call("GET", _job_path(job_id, "events"))


# Admin operations. None is resent after a lost answer: each changes something and has no key
# that would make a second one harmless.


def create_key(
    role: Role | str,
    name: str | None,
    namespaces: Sequence[str],
    expires_in_s: float | None = None,
    task_types: Sequence[str] = (),
) -> Call:
    spec = checked(
        KeyCreate,
        {
            "role": role,
            "name": name,
            "namespaces": list(namespaces),
            "expires_in_s": _seconds(expires_in_s),
            "task_types": list(task_types),
        },
    )
    return Call("POST", "/keys", json=spec.model_dump(mode="json", exclude_none=True), resendable=False)


def rotate_key(key: str, grace_s: float | None) -> Call:
    spec = checked(KeyRotate, {} if grace_s is None else {"grace_s": float(grace_s)})
    path = "/keys/" + quote(key, safe="") + "/rotate"
    return Call("POST", path, json=spec.model_dump(mode="json"), resendable=False)


def list_keys() -> Call:
    return Call("GET", "/keys")


def revoke_key(key: str) -> Call:
    return Call("DELETE", "/keys/" + quote(key, safe=""), resendable=False)


def workers(include_gone: bool) -> Call:
    return Call("GET", "/workers", query={"include_gone": "true" if include_gone else "false"})


def drain_worker(worker_id: str) -> Call:
    return Call("POST", "/workers/" + quote(worker_id, safe="") + "/drain", resendable=False)


def undrain_worker(worker_id: str) -> Call:
    return Call("POST", "/workers/" + quote(worker_id, safe="") + "/resume", resendable=False)


def _namespace_query(namespace: str | None) -> dict[str, str | int | float]:
    return {"namespace": namespace} if namespace else {}


def requeue_jobs(
    states: Sequence[RequeueableState | str], type: str | None, dry_run: bool, namespace: str | None
) -> Call:
    spec = checked(BulkRequeue, {"states": list(states), "type": type, "dry_run": dry_run})
    query = _namespace_query(namespace)
    return Call("POST", "/queues/requeue", query=query, json=spec.model_dump(mode="json"), resendable=False)


def empty_queue(type: str, include_scheduled: bool, dry_run: bool, namespace: str | None) -> Call:
    spec = checked(QueueEmpty, {"type": type, "include_scheduled": include_scheduled, "dry_run": dry_run})
    query = _namespace_query(namespace)
    return Call("POST", "/queues/empty", query=query, json=spec.model_dump(mode="json"), resendable=False)


def purge(
    states: Sequence[FinishedState | str],
    older_than_s: float,
    type: str | None,
    dry_run: bool,
    namespace: str | None,
) -> Call:
    request = checked(
        PurgeRequest,
        {"states": list(states), "older_than_s": float(older_than_s), "type": type, "dry_run": dry_run},
    )
    query = {"namespace": namespace} if namespace else {}
    return Call("POST", "/admin/purge", query=query, json=request.model_dump(mode="json"), resendable=False)


def parsed(model: type[Model], response: httpx.Response) -> Model:
    """The answer as ``model``, or the error it carries raised as a TaskpostError."""
    if response.is_error:
        raise error_from_response(response)
    return model.model_validate_json(response.content)


def parsed_list(model: type[Model], response: httpx.Response) -> list[Model]:
    """A JSON array answer as a list of ``model``."""
    if response.is_error:
        raise error_from_response(response)
    return TypeAdapter(list[model]).validate_json(response.content)  # type: ignore[valid-type]
