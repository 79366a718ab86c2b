"""The blob collector, run by the reaper: expired uploads, orphaned outputs, garbage blobs.

One pass forgets uploads no new job has named for TASKPOST_UPLOAD_GRACE_S (their blob stays
while a job references it), drops pending outputs of attempts that are no longer running,
turns reservations never settled within the grace period into garbage, then deletes garbage
from the store in small batches: each blob from the store first, its row after, so that a crash
in between only repeats a delete (a missing blob is not an error). Nothing is written while
there is nothing to do.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import ColumnElement, and_, delete, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from taskpost.server.coordinator import Coordinator
from taskpost.server.services import attempt_outputs, blob_refs
from taskpost.server.services.blob_refs import BLOBS
from taskpost.server.services.jobs import UPLOADS

logger = logging.getLogger(__name__)

BATCH = 200
"""Rows handled per transaction, and blobs deleted per batch."""


@dataclass
class Collected:
    uploads: int = 0
    orphaned_outputs: int = 0
    abandoned_writes: int = 0
    blobs: int = 0


async def collect(coord: Coordinator) -> Collected:
    """One pass; says what it removed."""
    now = coord.clock()
    cutoff = now - coord.settings.upload_grace_s
    done = Collected()
    while await _has_expired_uploads(coord, cutoff):
        async with coord.db.write() as conn:
            expired = await _expire_uploads(conn, cutoff, coord.db.dialect.locks_rows)
        done.uploads += expired
        if expired < BATCH:
            break
    async with coord.db.read() as conn:
        orphans = await attempt_outputs.has_orphans(conn)
        abandoned = (await conn.execute(select(BLOBS.c.key).where(_abandoned(cutoff)).limit(1))).first()
    if orphans or abandoned:
        async with coord.db.write() as conn:
            done.orphaned_outputs = await attempt_outputs.sweep(conn)
            result = await conn.execute(update(BLOBS).where(_abandoned(cutoff)).values(stored_at=now))
            done.abandoned_writes = result.rowcount
    while True:
        async with coord.db.read() as conn:
            garbage = (
                await conn.execute(
                    select(BLOBS.c.key).where(BLOBS.c.refs == 0, BLOBS.c.stored_at.is_not(None)).limit(BATCH)
                )
            ).scalars()
            keys = list(garbage)
        await blob_refs.delete_garbage(coord, keys)
        done.blobs += len(keys)
        if len(keys) < BATCH:
            break
    if done != Collected():
        logger.info(
            "collected %d blobs (%d expired uploads, %d orphaned outputs, %d abandoned writes)",
            done.blobs,
            done.uploads,
            done.orphaned_outputs,
            done.abandoned_writes,
            extra={"action": "blob_gc", "blobs": done.blobs},
        )
    return done


def _abandoned(cutoff: float) -> ColumnElement[bool]:
    """Reservations older than the grace period: their writer is gone."""
    return and_(BLOBS.c.refs == 0, BLOBS.c.stored_at.is_(None), BLOBS.c.created_at < cutoff)


async def _has_expired_uploads(coord: Coordinator, cutoff: float) -> bool:
    async with coord.db.read() as conn:
        found = await conn.execute(select(UPLOADS.c.id).where(UPLOADS.c.last_used_at < cutoff).limit(1))
        return found.first() is not None


async def _expire_uploads(conn: AsyncConnection, cutoff: float, locks_rows: bool) -> int:
    query = select(UPLOADS.c.id, UPLOADS.c.blob_key).where(UPLOADS.c.last_used_at < cutoff).limit(BATCH)
    if locks_rows:
        # A submit naming one of them holds its row: it either finishes first or finds it gone.
        query = query.with_for_update(skip_locked=True)
    expired = (await conn.execute(query)).all()
    await conn.execute(delete(UPLOADS).where(UPLOADS.c.id.in_([row.id for row in expired])))
    await blob_refs.drop(conn, [row.blob_key for row in expired])
    return len(expired)
