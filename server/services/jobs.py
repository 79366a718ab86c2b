"""Client-side job operations: submit, read, list, cancel, requeue."""

from __future__ import annotations

import json
import uuid
from pathlib import PurePosixPath
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from protocol import (
    FILES_ROOT_LABEL,
    LOCAL_PATH_PARAM,
    REQUEUEABLE_STATES,
    JobCreate,
    JobEventPublic,
    JobPage,
    JobPublic,
    JobState,
    RetryPolicy,
)
from server.coordinator import BUILTIN_JOB_TYPES, Coordinator
from server.db.models import Job, KnownJobType, Upload
from server.errors import (
    FileNotFound,
    InvalidParams,
    InvalidState,
    JobNotFound,
    UnknownJobType,
    UploadNotFound,
)
from server.services import events
from server.services.convert import job_public

JOBS = Job.__table__  # type: ignore[attr-defined]
UPLOADS = Upload.__table__  # type: ignore[attr-defined]
JOB_TYPES = KnownJobType.__table__  # type: ignore[attr-defined]


async def ensure_known_types(coord: Coordinator, types: set[str]) -> None:
    """Refuse job types that no agent declared (re-reading the table once on a miss)."""
    missing = types - coord.known_job_types
    if not missing:
        return
    async with coord.db.read() as conn:
        names = (await conn.execute(select(JOB_TYPES.c.name))).scalars().all()
    coord.known_job_types.update(names)
    missing = types - coord.known_job_types
    if missing:
        known = sorted(coord.known_job_types)
        raise UnknownJobType(
            f"unknown job type {sorted(missing)[0]!r}; known types: {', '.join(known)}",
            known_types=known,
        )


def unserved_type_warning(coord: Coordinator, job_type: str) -> str | None:
    """A note when no agent this coordinator knows runs ``job_type``: the job waits until one does."""
    if any(job_type in route.task_types for route in coord.workers.values()):
        return None
    extra = BUILTIN_JOB_TYPES.get(job_type)
    hint = f" (agents need: pip install 'taskpost[{extra}]')" if extra else ""
    return f"no registered agent runs {job_type!r} yet; the job waits in the queue until one does{hint}"


def _check_local_path(spec: JobCreate) -> None:
    """A job that names a file on an agent's machine must route to agents holding its root."""
    local_path = spec.params.get(LOCAL_PATH_PARAM)
    if local_path is None:
        return
    if not isinstance(local_path, str) or not PurePosixPath(local_path).is_absolute():
        raise InvalidParams("params.local_path must be an absolute path", field="params.local_path")
    roots = [
        label.removeprefix(FILES_ROOT_LABEL) for label in spec.labels if label.startswith(FILES_ROOT_LABEL)
    ]
    if not any(PurePosixPath(local_path).is_relative_to(root) for root in roots):
        raise InvalidParams(
            f"a job with local_path must carry the label {FILES_ROOT_LABEL}<dir> of an agent's files root"
            f' that contains it, e.g. labels: ["{FILES_ROOT_LABEL}{PurePosixPath(local_path).parent}"]',
            field="labels",
        )


def _row_for(coord: Coordinator, spec: JobCreate, inputs: list[dict[str, Any]], now: float) -> dict[str, Any]:
    settings = coord.settings
    policy = spec.retry or RetryPolicy(
        base_s=settings.retry_base_s, factor=settings.retry_factor, cap_s=settings.retry_cap_s
    )
    return {
        "id": str(uuid.uuid4()),
        "type": spec.type,
        "state": JobState.QUEUED.value,
        "priority": spec.priority.rank,
        "params": spec.params,
        "meta": spec.meta,
        "attempts": 0,
        "max_attempts": spec.max_attempts or settings.default_max_attempts,
        "timeout_s": spec.timeout_s if spec.timeout_s is not None else settings.default_timeout_s,
        "total_timeout_s": spec.total_timeout_s,
        "retry": policy.model_dump(),
        "worker_type": spec.worker_type.value if spec.worker_type else None,
        "labels": json.dumps(sorted(set(spec.labels))),
        "idempotency_key": spec.idempotency_key,
        "inputs": inputs,
        "outputs": [],
        "created_at": now,
        "cancel_requested": False,
    }


async def _resolve_inputs(conn: AsyncConnection, specs: list[JobCreate]) -> dict[str, dict[str, Any]]:
    upload_ids = {ref.upload_id for spec in specs for ref in spec.inputs}
    if not upload_ids:
        return {}
    rows = await conn.execute(select(UPLOADS).where(UPLOADS.c.id.in_(upload_ids)))
    found = {row.id: row._asdict() for row in rows}
    for upload_id in upload_ids - found.keys():
        raise UploadNotFound(f"no upload has id {upload_id!r}: upload the file first", upload_id=upload_id)
    return found


def _inputs_of(spec: JobCreate, uploads: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    names = [ref.name for ref in spec.inputs]
    if len(set(names)) != len(names):
        raise InvalidParams("input names must be unique within a job", field="inputs")
    return [
        {
            "name": ref.name,
            "blob_key": uploads[ref.upload_id]["blob_key"],
            "size": uploads[ref.upload_id]["size"],
            "sha256": uploads[ref.upload_id]["sha256"],
        }
        for ref in spec.inputs
    ]


async def submit(coord: Coordinator, specs: list[JobCreate]) -> list[tuple[JobPublic, bool]]:
    """Insert jobs; a spec whose idempotency key exists returns the existing job instead."""
    await ensure_known_types(coord, {spec.type for spec in specs})
    for spec in specs:
        _check_local_path(spec)
    now = coord.clock()
    try:
        results = await _submit_once(coord, specs, now)
    except IntegrityError:
        # Another coordinator inserted the same idempotency key between our read and insert.
        results = await _submit_once(coord, specs, now)
    if any(created for _, created in results):
        coord.notifier.notify()
    return results


async def _submit_once(
    coord: Coordinator, specs: list[JobCreate], now: float
) -> list[tuple[JobPublic, bool]]:
    async with coord.db.write() as conn:
        keys = {spec.idempotency_key for spec in specs if spec.idempotency_key}
        id_by_key: dict[str, str] = {}
        if keys:
            rows = await conn.execute(
                select(JOBS.c.idempotency_key, JOBS.c.id).where(JOBS.c.idempotency_key.in_(keys))
            )
            id_by_key = {row.idempotency_key: row.id for row in rows}
        uploads = await _resolve_inputs(conn, specs)
        plan: list[tuple[str, bool]] = []
        new_rows: list[dict[str, Any]] = []
        for spec in specs:
            key = spec.idempotency_key
            if key and key in id_by_key:
                plan.append((id_by_key[key], False))
                continue
            row = _row_for(coord, spec, _inputs_of(spec, uploads), now)
            new_rows.append(row)
            if key:
                id_by_key[key] = row["id"]
            plan.append((row["id"], True))
        if new_rows:
            await conn.execute(insert(JOBS), new_rows)
        wanted = {job_id for job_id, _ in plan}
        rows = await conn.execute(select(JOBS).where(JOBS.c.id.in_(wanted)))
        by_id = {row.id: job_public(row) for row in rows}
    return [(by_id[job_id], created) for job_id, created in plan]


async def _load(conn: AsyncConnection, job_id: str) -> Any:
    row = (await conn.execute(select(JOBS).where(JOBS.c.id == job_id))).first()
    if row is None:
        raise JobNotFound(f"no job has id {job_id!r}", job_id=job_id)
    return row


async def get(coord: Coordinator, job_id: str) -> JobPublic:
    async with coord.db.read() as conn:
        return job_public(await _load(conn, job_id))


async def list_jobs(
    coord: Coordinator,
    *,
    state: JobState | None,
    job_type: str | None,
    limit: int,
    cursor: str | None,
) -> JobPage:
    """Newest first; ``cursor`` is the opaque value ``next_cursor`` gave."""
    query = select(JOBS).order_by(JOBS.c.seq.desc()).limit(limit + 1)
    if state is not None:
        query = query.where(JOBS.c.state == state.value)
    if job_type is not None:
        query = query.where(JOBS.c.type == job_type)
    if cursor is not None:
        if not cursor.isdigit():
            raise InvalidParams("cursor must be a value returned as next_cursor", field="cursor")
        query = query.where(JOBS.c.seq < int(cursor))
    async with coord.db.read() as conn:
        rows = (await conn.execute(query)).all()
    next_cursor = str(rows[limit - 1].seq) if len(rows) > limit else None
    return JobPage(jobs=[job_public(row) for row in rows[:limit]], next_cursor=next_cursor)


async def job_events(coord: Coordinator, job_id: str) -> list[JobEventPublic]:
    async with coord.db.read() as conn:
        await _load(conn, job_id)
        return await events.list_for_job(conn, job_id)


async def cancel(coord: Coordinator, job_id: str) -> JobPublic:
    """Queued or waiting jobs end at once; a running one is asked to stop at its next heartbeat."""
    now = coord.clock()
    async with coord.db.write() as conn:
        row = await _load(conn, job_id)
        state = JobState(row.state)
        if state in (JobState.QUEUED, JobState.FAILED):
            values: dict[str, Any] = {
                "state": JobState.CANCELLED.value,
                "ended_at": now,
                "cancel_requested": True,
            }
        elif state is JobState.PROCESSING:
            values = {"cancel_requested": True}
        else:
            raise InvalidState(
                f"job {job_id} is {state.value}; only queued, failed or processing jobs can be cancelled",
                state=state.value,
            )
        await conn.execute(update(JOBS).where(JOBS.c.id == job_id).values(**values))
        await events.record(conn, [events.Event(job_id, "cancel_requested", row.attempts)], now)
        return job_public(await _load(conn, job_id))


async def requeue(coord: Coordinator, job_id: str) -> JobPublic:
    """Give a failed, dead or cancelled job a fresh set of attempts."""
    now = coord.clock()
    async with coord.db.write() as conn:
        row = await _load(conn, job_id)
        state = JobState(row.state)
        if state not in REQUEUEABLE_STATES:
            allowed = ", ".join(sorted(s.value for s in REQUEUEABLE_STATES))
            raise InvalidState(
                f"job {job_id} is {state.value}; only {allowed} jobs can be requeued", state=state.value
            )
        await conn.execute(
            update(JOBS)
            .where(JOBS.c.id == job_id)
            .values(
                state=JobState.QUEUED.value,
                attempts=0,
                available_at=None,
                ended_at=None,
                cancel_requested=False,
                lease_token=None,
                lease_expires_at=None,
                worker_id=None,
                progress=None,
                progress_message=None,
            )
        )
        await events.record(conn, [events.Event(job_id, "requeued", detail=f"was {state.value}")], now)
        job = job_public(await _load(conn, job_id))
    coord.notifier.notify()
    return job


async def output_blob(coord: Coordinator, job_id: str, name: str) -> dict[str, Any]:
    """The stored output named ``name`` (its blob key, size, digest)."""
    async with coord.db.read() as conn:
        row = await _load(conn, job_id)
    for entry in row.outputs:
        if entry["name"] == name:
            return dict(entry)
    raise FileNotFound(f"job {job_id} has no output named {name!r}", job_id=job_id, name=name)
