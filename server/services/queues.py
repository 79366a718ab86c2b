"""Bulk operations on the queue, like ``rq requeue --all`` and ``rq empty``.

Each call changes at most MAX_BULK_JOBS jobs, oldest first, in one transaction, and says whether
others are left (``more``); each job changed gets the event its single-job operation records
(``requeued``, ``cancel_requested``). A dry run counts every job the call would reach.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, and_, case, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from taskpost.protocol import MAX_BULK_JOBS, BulkRequeue, BulkResult, JobState, QueueEmpty
from taskpost.server.coordinator import Coordinator
from taskpost.server.db.models import Job
from taskpost.server.services import events

logger = logging.getLogger(__name__)

JOBS = Job.__table__  # type: ignore[attr-defined]


def requeued_values() -> dict[str, Any]:
    """The columns of a requeued job: queued now, with a fresh set of attempts."""
    return {
        "state": JobState.QUEUED.value,
        "attempts": 0,
        "available_at": None,
        "ended_at": None,
        "cancel_requested": False,
        "lease_token": None,
        "last_lease_token": None,
        "lease_expires_at": None,
        "worker_id": None,
        "declined_by": None,
        "webhook_state": case((JOBS.c.webhook_url.is_not(None), "waiting"), else_=None),
        "webhook_attempts": 0,
        "webhook_next_at": None,
        "progress": None,
        "progress_message": None,
    }


def _selection(scope: str | None, states: Sequence[JobState], job_type: str | None) -> ColumnElement[bool]:
    conditions = [JOBS.c.state.in_(sorted({state.value for state in states}))]
    if scope is not None:
        conditions.append(JOBS.c.namespace == scope)
    if job_type is not None:
        conditions.append(JOBS.c.type == job_type)
    return and_(*conditions)


async def _count(coord: Coordinator, where: ColumnElement[bool]) -> int:
    async with coord.db.read() as conn:
        return int((await conn.execute(select(func.count()).select_from(JOBS).where(where))).scalar_one())


async def _pick(conn: AsyncConnection, coord: Coordinator, where: ColumnElement[bool]) -> list[Any]:
    """Up to MAX_BULK_JOBS + 1 of the selected jobs, oldest first (one more tells whether any are
    left). Where rows lock, they are locked, and those another transaction holds are skipped:
    they are changing right now, and blocking on them could deadlock with a completion."""
    query = (
        select(JOBS.c.id, JOBS.c.state, JOBS.c.attempts)
        .where(where)
        .order_by(JOBS.c.seq)
        .limit(MAX_BULK_JOBS + 1)
    )
    if coord.db.dialect.locks_rows:
        query = query.with_for_update(skip_locked=True)
    return list((await conn.execute(query)).all())


async def requeue(coord: Coordinator, request: BulkRequeue, scope: str | None) -> BulkResult:
    """Put the failed, dead or cancelled jobs ``request`` selects back in the queue, in ``scope``
    (None: every namespace). A failed job awaiting its retry is queued now, with fresh attempts."""
    where = _selection(scope, [JobState(state) for state in request.states], request.type)
    if request.dry_run:
        return BulkResult(dry_run=True, count=await _count(coord, where))
    now = coord.clock()
    async with coord.db.write() as conn:
        rows = await _pick(conn, coord, where)
        batch = rows[:MAX_BULK_JOBS]
        if batch:
            ids = [row.id for row in batch]
            await conn.execute(update(JOBS).where(JOBS.c.id.in_(ids)).values(**requeued_values()))
            requeued = [
                event
                for row in batch
                for event in (
                    events.Event(row.id, "requeued", detail=f"was {row.state}"),
                    events.state_event(row.id, JobState.QUEUED, 0),
                )
            ]
            await events.record(conn, requeued, now)
    if batch:
        logger.info(
            "requeued %d jobs",
            len(batch),
            extra={"action": "bulk_requeue", "jobs": len(batch), "namespace": scope},
        )
        coord.notifier.notify()
        coord.job_changes.notify()
        coord.events.notify()
    return BulkResult(dry_run=False, count=len(batch), more=len(rows) > MAX_BULK_JOBS)


async def empty(coord: Coordinator, request: QueueEmpty, scope: str | None) -> BulkResult:
    """Cancel the queued jobs of a type in ``scope`` (None: every namespace), and its scheduled
    ones with ``include_scheduled``."""
    states = [JobState.QUEUED, *([JobState.SCHEDULED] if request.include_scheduled else [])]
    where = _selection(scope, states, request.type)
    if request.dry_run:
        return BulkResult(dry_run=True, count=await _count(coord, where))
    now = coord.clock()
    async with coord.db.write() as conn:
        rows = await _pick(conn, coord, where)
        batch = rows[:MAX_BULK_JOBS]
        if batch:
            ids = [row.id for row in batch]
            await conn.execute(
                update(JOBS)
                .where(JOBS.c.id.in_(ids))
                .values(state=JobState.CANCELLED.value, ended_at=now, cancel_requested=True)
            )
            cancelled = [
                event
                for row in batch
                for event in (
                    events.Event(row.id, "cancel_requested", row.attempts),
                    events.state_event(row.id, JobState.CANCELLED, row.attempts),
                )
            ]
            await events.record(conn, cancelled, now)
    if batch:
        logger.info(
            "cancelled %d %s jobs",
            len(batch),
            request.type,
            extra={
                "action": "queue_empty",
                "jobs": len(batch),
                "task_type": request.type,
                "namespace": scope,
            },
        )
        coord.job_changes.notify()
        coord.events.notify()
    return BulkResult(dry_run=False, count=len(batch), more=len(rows) > MAX_BULK_JOBS)
