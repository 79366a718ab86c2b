"""Submitting jobs: checks, inputs from uploads, idempotency keys (unique per namespace).

A new job holds a reference on the blob of each input (server.services.blob_refs), taken in
the transaction that inserts it, so that an upload that expires later leaves the job its files.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from taskpost.protocol import (
    JobCreate,
    JobPublic,
    JobState,
    RetryPolicy,
)
from taskpost.protocol.fields import MAX_INPUTS
from taskpost.server.coordinator import Coordinator
from taskpost.server.errors import InvalidParams, UploadNotFound
from taskpost.server.services import blob_refs, job_types, local_paths
from taskpost.server.services.job_rows import decoded, job_select, public_job
from taskpost.server.services.jobs import JOBS, UPLOADS


def _row_for(
    coord: Coordinator, namespace: str, spec: JobCreate, inputs: list[dict[str, Any]], now: float
) -> dict[str, Any]:
    settings = coord.settings
    policy = spec.retry or RetryPolicy(
        base_s=settings.retry_base_s, factor=settings.retry_factor, cap_s=settings.retry_cap_s
    )
    return {
        "id": str(uuid.uuid4()),
        "namespace": namespace,
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


async def _resolve_inputs(
    conn: AsyncConnection, coord: Coordinator, namespace: str, specs: list[JobCreate]
) -> dict[str, dict[str, Any]]:
    """The uploads the specs name; another namespace's upload is as unknown as a missing one."""
    upload_ids = {ref.upload_id for spec in specs for ref in spec.inputs}
    if not upload_ids:
        return {}
    query = select(UPLOADS).where(UPLOADS.c.id.in_(upload_ids), UPLOADS.c.namespace == namespace)
    if coord.db.dialect.locks_rows:
        query = query.with_for_update()  # the blob collector does not expire them meanwhile
    found = {row.id: row._asdict() for row in await conn.execute(query)}
    for upload_id in sorted(upload_ids - found.keys()):
        raise UploadNotFound(f"no upload has id {upload_id!r}: upload the file first", upload_id=upload_id)
    return found


def _inputs_of(
    spec: JobCreate, uploads: dict[str, dict[str, Any]], stored: Sequence[dict[str, Any]] = ()
) -> list[dict[str, Any]]:
    inputs = [
        {
            "name": ref.name,
            "blob_key": uploads[ref.upload_id]["blob_key"],
            "size": uploads[ref.upload_id]["size"],
            "sha256": uploads[ref.upload_id]["sha256"],
        }
        for ref in spec.inputs
    ] + list(stored)
    names = [entry["name"] for entry in inputs]
    if len(set(names)) != len(names):
        raise InvalidParams("input names must be unique within a job", field="inputs")
    if len(inputs) > MAX_INPUTS:
        raise InvalidParams(f"a job has at most {MAX_INPUTS} inputs", field="inputs")
    return inputs


async def submit(
    coord: Coordinator,
    namespace: str,
    specs: list[JobCreate],
    stored_inputs: Sequence[dict[str, Any]] = (),
) -> list[tuple[JobPublic, bool]]:
    """Insert jobs into ``namespace``; a spec whose idempotency key exists there returns that job.

    ``stored_inputs``: more inputs of the first spec, written with this request (a multipart
    submit's files: name, blob_key, size, sha256), whose blobs are settled with the job. They
    are not used when that spec's idempotency key returns an existing job.
    """
    if stored_inputs and len(specs) != 1:
        raise ValueError("stored inputs belong to a single job")
    await job_types.ensure_known(coord, {spec.type for spec in specs})
    for spec in specs:
        local_paths.check(spec)
    now = coord.clock()
    try:
        results = await _submit_once(coord, namespace, specs, now, stored_inputs)
    except IntegrityError:
        # Another coordinator inserted the same idempotency key between our read and insert.
        results = await _submit_once(coord, namespace, specs, now, stored_inputs)
    if any(created for _, created in results):
        coord.notifier.notify()
    return results


async def _submit_once(
    coord: Coordinator,
    namespace: str,
    specs: list[JobCreate],
    now: float,
    stored_inputs: Sequence[dict[str, Any]],
) -> list[tuple[JobPublic, bool]]:
    async with coord.db.write() as conn:
        keys = {spec.idempotency_key for spec in specs if spec.idempotency_key}
        id_by_key: dict[str, str] = {}
        if keys:
            rows = await conn.execute(
                select(JOBS.c.idempotency_key, JOBS.c.id).where(
                    JOBS.c.namespace == namespace, JOBS.c.idempotency_key.in_(keys)
                )
            )
            id_by_key = {row.idempotency_key: row.id for row in rows}
        uploads = await _resolve_inputs(conn, coord, namespace, specs)
        plan: list[tuple[str, bool]] = []
        new_rows: list[dict[str, Any]] = []
        used_uploads: set[str] = set()
        for spec in specs:
            key = spec.idempotency_key
            if key and key in id_by_key:
                plan.append((id_by_key[key], False))
                continue
            stored = stored_inputs if spec is specs[0] else ()
            row = _row_for(coord, namespace, spec, _inputs_of(spec, uploads, stored), now)
            new_rows.append(row)
            used_uploads.update(ref.upload_id for ref in spec.inputs)
            if stored:
                await blob_refs.settle(conn, [entry["blob_key"] for entry in stored], now)
            if key:
                id_by_key[key] = row["id"]
            plan.append((row["id"], True))
        if new_rows:
            await conn.execute(insert(JOBS), new_rows)
            await blob_refs.add(conn, [entry["blob_key"] for row in new_rows for entry in row["inputs"]])
        if used_uploads:
            await conn.execute(update(UPLOADS).where(UPLOADS.c.id.in_(used_uploads)).values(last_used_at=now))
        wanted = {job_id for job_id, _ in plan}
        rows = await conn.execute(job_select().where(JOBS.c.id.in_(wanted)))
        by_id = {row.id: public_job(decoded(row)) for row in rows}
    return [(by_id[job_id], created) for job_id, created in plan]
