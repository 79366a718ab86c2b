"""Retention: finished jobs are deleted some time after they ended, with what only they held.

A finished job (completed, dead or cancelled) goes with its events and any pending outputs, and
the references it held on its input and output blobs are dropped in the same transaction: a blob
nothing else names becomes garbage for the blob collector (server.services.blob_gc). Uploads
need nothing here: the collector forgets them after TASKPOST_UPLOAD_GRACE_S, and a job keeps
its inputs' blobs by its own references, whatever becomes of the upload.

The reaper applies each state's retention (TASKPOST_RETAIN_<STATE>_S, 0 meaning forever) on every
pass; ``taskpost purge`` and ``POST /admin/purge`` delete on demand. Either way jobs go in
batches, oldest first through ``ix_jobs_state_ended``: one short transaction of at most
TASKPOST_RETENTION_BATCH_SIZE jobs each, so a million finished jobs never hold the write lock
(SQLite) or many row locks (PostgreSQL) long enough to stall a claim. Every statement names the
finished state, so queued, running and failed (waiting to retry) jobs are never touched.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import ColumnElement, Text, and_, cast, delete, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from taskpost.protocol import JobState
from taskpost.protocol.admin import PurgeRequest, PurgeResult
from taskpost.server.coordinator import Coordinator
from taskpost.server.services import attempt_outputs, blob_refs
from taskpost.server.services.convert import require_datetime
from taskpost.server.services.events import EVENTS
from taskpost.server.services.jobs import JOBS

logger = logging.getLogger(__name__)

FINISHED_STATES = (JobState.COMPLETED, JobState.DEAD, JobState.CANCELLED)
BATCHES_PER_PASS = 10
"""Most batches one reaper pass deletes, so that a backlog cannot delay lease expiry for long."""
BATCHES_PER_REQUEST = 20
"""Most batches one purge request deletes; the answer says ``more`` and the CLI calls again."""


@dataclass(frozen=True)
class Selection:
    """Finished jobs of one state that ended at ``ended_before`` or earlier, optionally narrowed."""

    state: JobState
    ended_before: float
    namespace: str | None = None
    job_type: str | None = None

    def where(self) -> ColumnElement[bool]:
        conditions = [JOBS.c.state == self.state.value, JOBS.c.ended_at <= self.ended_before]
        if self.namespace is not None:
            conditions.append(JOBS.c.namespace == self.namespace)
        if self.job_type is not None:
            conditions.append(JOBS.c.type == self.job_type)
        return and_(*conditions)


async def count(coord: Coordinator, selection: Selection) -> int:
    async with coord.db.read() as conn:
        found = await conn.execute(select(func.count()).select_from(JOBS).where(selection.where()))
        return int(found.scalar_one())


async def delete_batches(coord: Coordinator, selection: Selection, batch_size: int, max_batches: int) -> int:
    """Delete up to ``max_batches`` batches of the selected jobs; returns how many jobs went."""
    deleted = 0
    for _ in range(max_batches):
        if not await _any(coord, selection):
            break  # nothing is written while there is nothing to do
        async with coord.db.write() as conn:
            batch = await _delete_batch(conn, coord, selection, batch_size)
        deleted += batch
        if batch < batch_size:
            break
    return deleted


async def _any(coord: Coordinator, selection: Selection) -> bool:
    async with coord.db.read() as conn:
        return (await conn.execute(select(JOBS.c.seq).where(selection.where()).limit(1))).first() is not None


async def _delete_batch(
    conn: AsyncConnection, coord: Coordinator, selection: Selection, batch_size: int
) -> int:
    query = select(JOBS.c.seq).where(selection.where()).order_by(JOBS.c.ended_at).limit(batch_size)
    if coord.db.dialect.locks_rows:
        # Replicas running the same pass take disjoint batches instead of queueing on each other.
        query = query.with_for_update(skip_locked=True)
    seqs = list((await conn.execute(query)).scalars())
    if not seqs:
        return 0
    # The state is checked again by the delete itself: a job requeued meanwhile stays. The JSON
    # columns come back as text (a CAST in the SQL: PostgreSQL's driver would decode them), so
    # that one row that is not JSON does not stop the batch.
    gone = (
        await conn.execute(
            delete(JOBS)
            .where(JOBS.c.seq.in_(seqs), selection.where())
            .returning(JOBS.c.id, cast(JOBS.c.inputs, Text), cast(JOBS.c.outputs, Text))
        )
    ).all()
    job_ids = [row[0] for row in gone]
    await conn.execute(delete(EVENTS).where(EVENTS.c.job_id.in_(job_ids)))
    await attempt_outputs.drop(conn, job_ids)
    # Sorted, so that two transactions dropping references on the same blobs take their row
    # locks in the same order.
    await blob_refs.drop(conn, sorted(key for row in gone for key in _blob_keys(row[0], row[1:])))
    return len(job_ids)


def _blob_keys(job_id: str, columns: Sequence[str | None]) -> list[str]:
    """The blob keys a job's inputs and outputs name (none from a column that is not JSON)."""
    keys: list[str] = []
    for raw in columns:
        try:
            files = json.loads(raw) if raw else []
            keys += [entry["blob_key"] for entry in files]
        except (ValueError, TypeError, KeyError):
            logger.error(
                "job %s names files in a column that is not readable; its blobs keep a reference",
                job_id,
                extra={"job_id": job_id, "action": "corrupt_row"},
            )
    return keys


def retention_of(coord: Coordinator, state: JobState) -> float:
    """How long finished jobs of ``state`` are kept (seconds); 0: forever."""
    settings = coord.settings
    return {
        JobState.COMPLETED: settings.retain_completed_s,
        JobState.DEAD: settings.retain_dead_s,
        JobState.CANCELLED: settings.retain_cancelled_s,
    }[state]


async def apply_retention(coord: Coordinator) -> int:
    """One reaper step: delete jobs past their state's retention, at most BATCHES_PER_PASS
    batches; returns how many went."""
    now = coord.clock()
    batch_size = coord.settings.retention_batch_size
    deleted: dict[str, int] = {}
    budget = BATCHES_PER_PASS
    for state in FINISHED_STATES:
        keep_s = retention_of(coord, state)
        if keep_s <= 0 or budget <= 0:
            continue
        gone = await delete_batches(coord, Selection(state, now - keep_s), batch_size, budget)
        budget -= -(-gone // batch_size)  # the batches it used (a short one included)
        if gone:
            deleted[state.value] = gone
    if deleted:
        logger.info(
            "retention deleted %d finished jobs (%s)",
            sum(deleted.values()),
            ", ".join(f"{state} {n}" for state, n in deleted.items()),
            extra={"action": "retention", "jobs": sum(deleted.values())},
        )
    return sum(deleted.values())


async def purge(coord: Coordinator, request: PurgeRequest, namespace: str | None) -> PurgeResult:
    """Delete (or, on a dry run, count) the finished jobs ``request`` selects, in ``namespace``
    (None: every one); at most BATCHES_PER_REQUEST batches, ``more`` saying whether it stopped there."""
    ended_before = coord.clock() - request.older_than_s
    states = [JobState(state) for state in dict.fromkeys(request.states)]
    selections = [Selection(state, ended_before, namespace, request.type) for state in states]
    jobs: dict[str, int] = {}
    more = False
    batch_size = coord.settings.retention_batch_size
    budget = BATCHES_PER_REQUEST
    for selection in selections:
        if request.dry_run:
            jobs[selection.state.value] = await count(coord, selection)
            continue
        gone = await delete_batches(coord, selection, batch_size, budget) if budget > 0 else 0
        budget -= -(-gone // batch_size)
        jobs[selection.state.value] = gone
        more = more or (budget <= 0 and await _any(coord, selection))
    deleted = 0 if request.dry_run else sum(jobs.values())
    if deleted:
        logger.info(
            "purge deleted %d finished jobs that ended by %s",
            deleted,
            require_datetime(ended_before).isoformat(),
            extra={"action": "purge", "jobs": deleted, "namespace": namespace},
        )
    return PurgeResult(
        dry_run=request.dry_run, ended_before=require_datetime(ended_before), jobs=jobs, more=more
    )
