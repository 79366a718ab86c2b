"""Blob lifetime: a row in ``blobs`` for every blob in the store, counting what references it.

A blob is written in three steps, so that neither a refusal nor a crash leaks it:

1. reserve: a row with no reference and ``stored_at`` NULL, committed on its own;
2. the bytes go to the store under that key;
3. settle: the transaction that records what uses the blob (an upload, a pending output, a
   job's input) sets ``stored_at`` and adds the references.

A write that is refused (too large, a wrong digest, a stale lease, an invalid submit) is
discarded at once. References are dropped in the same transaction that drops what held them; a
stored blob left with none is garbage, which ``server.services.blob_gc`` deletes from the store
first and forgets afterwards. A reservation never settled (the coordinator died mid-write) turns
into garbage after TASKPOST_UPLOAD_GRACE_S. Garbage is final: nothing can reference it again, as
only a reservation can be settled and every other reference is copied from a holder that still
counts.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager

from sqlalchemy import bindparam, delete, func, insert, update
from sqlalchemy.ext.asyncio import AsyncConnection

from taskpost.server.blobs import StoredBlob
from taskpost.server.coordinator import Coordinator
from taskpost.server.db.models import Blob
from taskpost.server.errors import UploadTooSlow

BLOBS = Blob.__table__  # type: ignore[attr-defined]

_ADD_REFS = (
    update(BLOBS).where(BLOBS.c.key == bindparam("b_key")).values(refs=BLOBS.c.refs + bindparam("b_count"))
)


def new_key() -> str:
    return uuid.uuid4().hex


async def write(coord: Coordinator, chunks: AsyncIterable[bytes]) -> StoredBlob:
    """Reserve a key and store ``chunks`` under it; the caller settles or discards the blob."""
    key = new_key()
    async with coord.db.write() as conn:
        await conn.execute(insert(BLOBS).values(key=key, refs=0, created_at=coord.clock()))
    async with discarded_on_error(coord, [key]):
        return await coord.blobs.put(key, chunks, max_bytes=coord.settings.max_upload_bytes)


@asynccontextmanager
async def discarded_on_error(coord: Coordinator, keys: Sequence[str]) -> AsyncIterator[None]:
    """Discard ``keys`` (those still unreferenced) when the block raises."""
    try:
        yield
    except Exception:
        await discard(coord, keys)
        raise


async def settle(conn: AsyncConnection, keys: Sequence[str], now: float) -> None:
    """Mark reservations as stored (with no reference yet: ``add`` them in the same transaction)."""
    if not keys:
        return
    result = await conn.execute(
        update(BLOBS).where(BLOBS.c.key.in_(set(keys)), BLOBS.c.stored_at.is_(None)).values(stored_at=now)
    )
    if result.rowcount != len(set(keys)):
        raise UploadTooSlow()


async def add(conn: AsyncConnection, keys: Iterable[str]) -> None:
    """One reference more per occurrence of a key in ``keys``."""
    await _change(conn, Counter(keys))


async def drop(conn: AsyncConnection, keys: Iterable[str]) -> None:
    """One reference less per occurrence of a key in ``keys``; at none left, the blob is garbage."""
    await _change(conn, {key: -count for key, count in Counter(keys).items()})


async def _change(conn: AsyncConnection, counts: dict[str, int]) -> None:
    if counts:
        # In key order: two transactions locking the same blob rows lock them in the same order
        # (no deadlock on a database that locks rows).
        changes = [{"b_key": key, "b_count": counts[key]} for key in sorted(counts)]
        await conn.execute(_ADD_REFS, changes)


async def discard(coord: Coordinator, keys: Sequence[str]) -> None:
    """Delete at once those of ``keys`` that nothing references (refused or unused writes)."""
    if not keys:
        return
    async with coord.db.write() as conn:
        # Turning them into garbage first means a writer still holding one cannot settle it.
        doomed = (
            await conn.execute(
                update(BLOBS)
                .where(BLOBS.c.key.in_(set(keys)), BLOBS.c.refs == 0)
                .values(stored_at=func.coalesce(BLOBS.c.stored_at, coord.clock()))
                .returning(BLOBS.c.key)
            )
        ).scalars()
        garbage = list(doomed)
    await delete_garbage(coord, garbage)


async def delete_garbage(coord: Coordinator, keys: Sequence[str]) -> None:
    """Remove garbage blobs from the store, then their rows (a crash in between only repeats it)."""
    if not keys:
        return
    for key in keys:
        await coord.blobs.delete(key)
    async with coord.db.write() as conn:
        await conn.execute(delete(BLOBS).where(BLOBS.c.key.in_(keys), BLOBS.c.refs == 0))
