"""Submitting jobs: checks, inputs from uploads, idempotency keys (unique per namespace).

A new job holds a reference on the blob of each input (server.services.blob_refs), taken in
the transaction that inserts it, so that an upload that expires later leaves the job its files.

A job due later (``run_at``, ``delay_s``) is inserted SCHEDULED (server.services.schedule); one
submitted with ``cache`` that an equal completed job answers is inserted COMPLETED with that
job's result and outputs, holding its own references on their blobs (server.services.result_cache).

The steps of a job's ``then`` are checked here like jobs of their own and stored with it; they
become jobs when it completes (server.services.chains), at once for a copy from the cache. A
param naming another job's output (``from_job``) becomes an input (server.services.job_inputs).
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Sequence
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from taskpost.protocol import JobCreate, JobPublic, JobState
from taskpost.protocol.fields import MAX_INPUTS
from taskpost.server import outbound
from taskpost.server.coordinator import Coordinator
from taskpost.server.errors import InvalidParams, UploadNotFound
from taskpost.server.services import (
    blob_refs,
    chains,
    events,
    job_inputs,
    job_types,
    local_paths,
    param_checks,
    result_cache,
    schedule,
)
from taskpost.server.services.job_rows import decoded, job_select, public_job
from taskpost.server.services.jobs import JOBS, UPLOADS
from taskpost.server.services.new_jobs import new_row


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
        schedule.due_at(spec, coord.clock())  # refuses run_at with delay_s, or without a time zone
        if spec.webhook_url is not None:
            await outbound.refuse_unsafe_url(
                spec.webhook_url, field="webhook_url", allow_private=coord.settings.allow_private_webhooks
            )
    await param_checks.check(coord, specs)
    await chains.check(coord, namespace, specs)
    specs = await local_paths.check(coord, namespace, specs)
    versions = await job_types.handler_versions(
        coord, {spec.type for spec in specs if result_cache.wanted(spec)}
    )
    now = coord.clock()
    try:
        results, spawned = await _submit_once(coord, namespace, specs, now, stored_inputs, versions)
    except IntegrityError:
        # Another coordinator inserted the same idempotency key between our read and insert.
        results, spawned = await _submit_once(coord, namespace, specs, now, stored_inputs, versions)
    created = {job.state for job, is_new in results if is_new}
    new_kinds = Counter((job.type, job.priority.value) for job, is_new in results if is_new)
    for (job_type, priority), n in new_kinds.items():
        coord.metrics.submitted(namespace, job_type, priority, n)
    if created:
        coord.events.notify()
    if JobState.QUEUED in created:
        coord.notifier.notify()
    if JobState.SCHEDULED in created:
        schedule.wake(coord)
    if JobState.COMPLETED in created:
        coord.job_changes.notify()  # served from the cache: it ended as it was inserted
    chains.announce(coord, spawned)
    return results


async def _submit_once(
    coord: Coordinator,
    namespace: str,
    specs: list[JobCreate],
    now: float,
    stored_inputs: Sequence[dict[str, Any]],
    versions: dict[str, str],
) -> tuple[list[tuple[JobPublic, bool]], list[chains.Spawned]]:
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
        cached: list[events.Event] = []
        used_uploads: set[str] = set()
        spawned: list[chains.Spawned] = []
        for number, spec in enumerate(specs):
            key = spec.idempotency_key
            if key and key in id_by_key:
                plan.append((id_by_key[key], False))
                continue
            stored = stored_inputs if number == 0 else ()
            inputs = _inputs_of(spec, uploads, stored)
            params, referenced = await job_inputs.resolve(
                conn,
                coord,
                namespace,
                spec.params,
                {entry["name"] for entry in inputs},
                prefix=f"jobs.{number}.params" if len(specs) > 1 else "params",
            )
            if referenced:
                spec = spec.model_copy(update={"params": params})
                inputs += referenced
                if len(inputs) > MAX_INPUTS:
                    raise InvalidParams(
                        f"a job has at most {MAX_INPUTS} inputs, from_job references included", field="inputs"
                    )
            row = new_row(coord, namespace, spec, inputs, now)
            if result_cache.wanted(spec):
                row["cache_key"] = result_cache.cache_key(
                    spec.type, versions[spec.type], spec.params, row["inputs"]
                )
                source = await result_cache.find(conn, coord, namespace, row["cache_key"])
                if source is not None:
                    row = result_cache.completed_copy(row, source, now)
                    cached.append(
                        events.Event(row["id"], "cached", 0, detail=f"result of job {source.job_id}")
                    )
            new_rows.append(row)
            used_uploads.update(ref.upload_id for ref in spec.inputs)
            if stored:
                await blob_refs.settle(conn, [entry["blob_key"] for entry in stored], now)
            if key:
                id_by_key[key] = row["id"]
            plan.append((row["id"], True))
        if new_rows:
            # One INSERT per run of rows with the same columns (a copy from the cache has more).
            for _, rows_alike in itertools.groupby(new_rows, key=lambda row: sorted(row)):
                await conn.execute(insert(JOBS), list(rows_alike))
            await blob_refs.add(
                conn, [entry["blob_key"] for row in new_rows for entry in (*row["inputs"], *row["outputs"])]
            )
            states = [
                events.state_event(row["id"], JobState(row["state"]), row["attempts"]) for row in new_rows
            ]
            await events.record(conn, [*cached, *states], now)
            served = [row for row in new_rows if row["state"] == JobState.COMPLETED.value]
            spawned = await chains.spawn(conn, coord, [_as_parent(row) for row in served], now)
        if used_uploads:
            await conn.execute(update(UPLOADS).where(UPLOADS.c.id.in_(used_uploads)).values(last_used_at=now))
        wanted = {job_id for job_id, _ in plan}
        rows = await conn.execute(job_select().where(JOBS.c.id.in_(wanted)))
        by_id = {row.id: public_job(decoded(row)) for row in rows}
    return [(by_id[job_id], created) for job_id, created in plan], spawned


def _as_parent(row: dict[str, Any]) -> chains.Parent:
    """A job served from the cache as it was inserted, completed."""
    return chains.Parent(
        row["id"], row["namespace"], row["priority"], 0, row.get("then_steps") or [], row["outputs"]
    )
