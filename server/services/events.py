"""The job event log: what happened to a job off the happy path."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from taskpost.protocol import JobEventPublic
from taskpost.server.db.models import JobEvent
from taskpost.server.services.convert import require_datetime

EVENTS = JobEvent.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Event:
    job_id: str
    kind: str
    attempt: int | None = None
    worker_id: str | None = None
    detail: str | None = None


async def record(conn: AsyncConnection, events: list[Event], now: float) -> None:
    if not events:
        return
    rows: list[dict[str, Any]] = [
        {
            "job_id": e.job_id,
            "at": now,
            "kind": e.kind,
            "attempt": e.attempt,
            "worker_id": e.worker_id,
            "detail": e.detail,
        }
        for e in events
    ]
    await conn.execute(insert(EVENTS), rows)


async def list_for_job(conn: AsyncConnection, job_id: str) -> list[JobEventPublic]:
    result = await conn.execute(select(EVENTS).where(EVENTS.c.job_id == job_id).order_by(EVENTS.c.id))
    return [
        JobEventPublic(
            at=require_datetime(row.at),
            kind=row.kind,
            attempt=row.attempt,
            worker_id=row.worker_id,
            detail=row.detail,
        )
        for row in result
    ]


async def jobs_with_worker(conn: AsyncConnection, job_ids: set[str], worker_id: str) -> set[str]:
    """Those of ``job_ids`` with an event of ``worker_id`` (an attempt it ran)."""
    query = select(EVENTS.c.job_id).where(EVENTS.c.job_id.in_(job_ids), EVENTS.c.worker_id == worker_id)
    result = await conn.execute(query.distinct())
    return set(result.scalars())
