"""The job event log: incidents off the happy path (``attempt_failed``, ``lease_expired``, ...)
and, for the event streams, every state change, progress report and partial output chunk
(kinds ``STREAM_KINDS``).

Ordering rule: ``record`` runs in the transaction that changed the job, after that job's row was
updated or locked. On PostgreSQL ids are handed out at insert time, so this keeps one job's event
ids in commit order, which is what makes them usable as a stream's ``Last-Event-ID``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from taskpost.protocol import STREAM_KINDS, JobEventPublic, JobState
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
    data: dict[str, Any] | None = None


def state_event(
    job_id: str, state: JobState, attempt: int | None = None, worker_id: str | None = None, **data: Any
) -> Event:
    """The job went into ``state`` (``data`` adds e.g. ``waited_s`` on processing, ``run_s`` on completed)."""
    return Event(job_id, "state", attempt, worker_id, data={"state": state.value, **data})


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
            "data": e.data,
        }
        for e in events
    ]
    await conn.execute(_INSERT_EVENTS, rows)


_INSERT_EVENTS = insert(EVENTS)
"""Built once: a statement built per call costs SQLAlchemy a new cache key on the hot path."""


async def list_for_job(conn: AsyncConnection, job_id: str, *, all: bool = False) -> list[JobEventPublic]:
    """The job's events, oldest first; the stream kinds only with ``all``."""
    query = select(EVENTS).where(EVENTS.c.job_id == job_id)
    if not all:
        query = query.where(EVENTS.c.kind.not_in(STREAM_KINDS))
    result = await conn.execute(query.order_by(EVENTS.c.id))
    return [
        JobEventPublic(
            at=require_datetime(row.at),
            kind=row.kind,
            attempt=row.attempt,
            worker_id=row.worker_id,
            detail=row.detail,
            id=row.id if all else None,
            data=row.data if all else None,
        )
        for row in result
    ]


async def jobs_with_worker(conn: AsyncConnection, job_ids: set[str], worker_id: str) -> set[str]:
    """Those of ``job_ids`` with an event of ``worker_id`` (an attempt it ran)."""
    query = select(EVENTS.c.job_id).where(EVENTS.c.job_id.in_(job_ids), EVENTS.c.worker_id == worker_id)
    result = await conn.execute(query.distinct())
    return set(result.scalars())
