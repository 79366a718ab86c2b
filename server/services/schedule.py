"""Jobs that wait for a time: scheduled submits (``run_at``, ``delay_s``) and failed attempts
waiting out their backoff. Both wait with ``available_at`` set and are queued when it passes.

Between two reaper passes the reaper's loop sleeps here until the earliest due time (or the end
of the period), queues what fell due and wakes the agents at once: no poll interval. A submit
that schedules a job wakes the sleep (``wake``), so that a due time earlier than the one slept
for is not missed. Queueing is one conditional UPDATE, so replicas sharing a database may all
run it: each job is queued once. A replica's submit wakes only its own timer; the others see
the job at their next pass and time it from then.
"""

from __future__ import annotations

import time

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from taskpost.protocol import JobCreate, JobState
from taskpost.server.coordinator import Coordinator
from taskpost.server.errors import InvalidParams
from taskpost.server.services import events
from taskpost.server.services.jobs import JOBS

WAITING_STATES = (JobState.SCHEDULED.value, JobState.FAILED.value)
"""States whose jobs are queued when ``available_at`` passes."""
_IDLE_WAIT_S = 0.05
"""How long to wait when the earliest due time has passed but nothing could be queued (a clock
set back): the loop must not spin."""


def due_at(spec: JobCreate, now: float) -> float | None:
    """When the job of ``spec`` falls due; None: now (no time given, or one already past)."""
    if spec.run_at is not None and spec.delay_s is not None:
        raise InvalidParams("give run_at or delay_s, not both", field="run_at")
    if spec.run_at is not None:
        if spec.run_at.tzinfo is None or spec.run_at.utcoffset() is None:
            raise InvalidParams(
                "run_at must carry a time zone, e.g. 2030-01-01T08:00:00Z or 2030-01-01T09:00:00+01:00",
                field="run_at",
            )
        due = spec.run_at.timestamp()
    elif spec.delay_s is not None:
        due = now + spec.delay_s
    else:
        return None
    return due if due > now else None


async def queue_due(conn: AsyncConnection, now: float) -> int:
    """Queue every waiting job whose ``available_at`` has passed (with its state event); returns how many."""
    result = await conn.execute(
        update(JOBS)
        .where(JOBS.c.state.in_(WAITING_STATES), JOBS.c.available_at <= now)
        .values(state=JobState.QUEUED.value, available_at=None, worker_id=None)
        .returning(JOBS.c.id, JOBS.c.attempts)
    )
    queued = [events.state_event(job_id, JobState.QUEUED, attempts) for job_id, attempts in result]
    await events.record(conn, queued, now)
    return len(queued)


async def next_due(coord: Coordinator) -> float | None:
    """The earliest ``available_at`` of a waiting job, if any."""
    found: list[float] = []
    async with coord.db.read() as conn:
        for state in WAITING_STATES:
            # One state per query: each is a seek to the start of ix_jobs_state_available.
            query = (
                select(JOBS.c.available_at)
                .where(JOBS.c.state == state, JOBS.c.available_at.is_not(None))
                .order_by(JOBS.c.available_at)
                .limit(1)
            )
            first = (await conn.execute(query)).scalar()
            if first is not None:
                found.append(float(first))
    return min(found, default=None)


async def queue_due_now(coord: Coordinator) -> int:
    """Queue what fell due in a transaction of its own, and wake held claims if anything was."""
    async with coord.db.write() as conn:
        queued = await queue_due(conn, coord.clock())
    if queued:
        coord.notifier.notify()
        coord.job_changes.notify()
        coord.events.notify()
    return queued


def wake(coord: Coordinator) -> None:
    """A job was scheduled: the sleeping timer looks at the earliest due time again."""
    coord.due_timer.notify()


async def run_until(coord: Coordinator, until: float) -> None:
    """Until ``until`` (``time.monotonic()``): sleep to each due time and queue what fell due."""
    timer = coord.due_timer
    while True:
        seen = timer.version
        left = until - time.monotonic()
        if left <= 0:
            return
        due = await next_due(coord)
        wait = left if due is None else min(left, due - coord.clock())
        if wait <= 0:
            if await queue_due_now(coord):
                continue
            wait = min(left, _IDLE_WAIT_S)
        await timer.wait(seen, wait)
