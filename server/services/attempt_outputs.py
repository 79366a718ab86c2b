"""Outputs belong to an attempt: pending while it runs, the job's only when it succeeds.

An output uploaded under a lease is kept in ``attempt_outputs`` with that lease token. The
completion that ends the attempt successfully makes them the job's outputs, in the same
transaction; every other end of an attempt (a failure, a lost lease, a release, a cancel) drops
them and their blob references. Every function here runs inside the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import and_, bindparam, delete, exists, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from taskpost.protocol import JobState
from taskpost.server.blobs import StoredBlob
from taskpost.server.db.models import AttemptOutput
from taskpost.server.services import blob_refs
from taskpost.server.services.jobs import JOBS

PENDING = AttemptOutput.__table__  # type: ignore[attr-defined]


async def put(
    conn: AsyncConnection, job_id: str, token: str, name: str, blob: StoredBlob, now: float
) -> None:
    """Record an output of the attempt holding ``token``, replacing one of the same name.

    The caller has checked the lease and settled ``blob`` in this transaction.
    """
    replaced = await conn.execute(
        delete(PENDING)
        .where(PENDING.c.job_id == job_id, PENDING.c.lease_token == token, PENDING.c.name == name)
        .returning(PENDING.c.blob_key)
    )
    await blob_refs.drop(conn, replaced.scalars().all())
    await conn.execute(
        insert(PENDING).values(
            job_id=job_id,
            lease_token=token,
            name=name,
            blob_key=blob.key,
            size=blob.size,
            sha256=blob.sha256,
            created_at=now,
        )
    )
    await blob_refs.add(conn, [blob.key])


async def drop(conn: AsyncConnection, job_ids: Iterable[str]) -> None:
    """Forget the pending outputs of attempts that ended without success."""
    ids = set(job_ids)
    if ids:
        dropped = await conn.execute(
            delete(PENDING).where(PENDING.c.job_id.in_(ids)).returning(PENDING.c.blob_key)
        )
        await blob_refs.drop(conn, dropped.scalars().all())


async def promote(
    conn: AsyncConnection, succeeded: Sequence[tuple[str, str, Any]]
) -> dict[str, list[dict[str, Any]]]:
    """Make each succeeded attempt's outputs its job's outputs, and nothing else; returns them
    per job id.

    ``succeeded``: (job id, lease token of the attempt, the job's outputs before it).
    """
    if not succeeded:
        return {}
    rows = await conn.execute(_TAKE_PENDING, {"job_ids": sorted({job_id for job_id, _, _ in succeeded})})
    pending = sorted(rows, key=lambda row: row.id)
    freed: list[str] = []
    promoted: dict[str, list[dict[str, Any]]] = {}
    for job_id, token, before in succeeded:
        outputs = [_entry(row) for row in pending if row.job_id == job_id and row.lease_token == token]
        # Rows of another token are leftovers of an older attempt: dropped like the old outputs.
        freed += [row.blob_key for row in pending if row.job_id == job_id and row.lease_token != token]
        freed += [entry["blob_key"] for entry in before or []]
        if outputs or before:
            await conn.execute(update(JOBS).where(JOBS.c.id == job_id).values(outputs=outputs))
        promoted[job_id] = outputs
    await blob_refs.drop(conn, freed)
    return promoted


_ENTRY_COLUMNS = (PENDING.c.name, PENDING.c.blob_key, PENDING.c.size, PENDING.c.sha256)
_TAKE_PENDING = (
    delete(PENDING)
    .where(PENDING.c.job_id.in_(bindparam("job_ids", expanding=True)))
    .returning(PENDING.c.id, PENDING.c.job_id, PENDING.c.lease_token, *_ENTRY_COLUMNS)
)
"""Built once, as every statement of each completion: SQLAlchemy then reuses its cache key."""


def _entry(row: Any) -> dict[str, Any]:
    return {"name": row.name, "blob_key": row.blob_key, "size": row.size, "sha256": row.sha256}


def _orphaned() -> Any:
    """Pending rows whose attempt is no longer the job's running one."""
    return ~exists().where(
        and_(
            JOBS.c.id == PENDING.c.job_id,
            JOBS.c.lease_token == PENDING.c.lease_token,
            JOBS.c.state == JobState.PROCESSING.value,
        )
    )


async def sweep(conn: AsyncConnection) -> int:
    """Drop pending outputs whose attempt is no longer running (a safety net; returns how many)."""
    orphans = await conn.execute(delete(PENDING).where(_orphaned()).returning(PENDING.c.blob_key))
    keys = orphans.scalars().all()
    await blob_refs.drop(conn, keys)
    return len(keys)


async def has_orphans(conn: AsyncConnection) -> bool:
    return (await conn.execute(select(PENDING.c.id).where(_orphaned()).limit(1))).first() is not None
