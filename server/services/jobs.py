"""Client-side job operations on existing jobs: read, list, events, cancel, requeue, outputs.

Every operation takes the caller's namespace scope: a client's own namespace, or None for an
admin reading all of them. A job outside the scope is reported as not found.
"""

from __future__ import annotations

import re
import time
from typing import Any

from sqlalchemy import case, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from taskpost.protocol import REQUEUEABLE_STATES, JobEventPublic, JobPage, JobPublic, JobState
from taskpost.server.coordinator import Coordinator
from taskpost.server.db.models import Job, Upload
from taskpost.server.errors import FileNotFound, InvalidParams, InvalidState, JobNotFound
from taskpost.server.services import events
from taskpost.server.services.job_rows import decoded, job_select, public_job, public_jobs

JOBS = Job.__table__  # type: ignore[attr-defined]
UPLOADS = Upload.__table__  # type: ignore[attr-defined]

_INT64_MAX = 2**63 - 1


def _decimals_up_to(limit: int) -> str:
    """A regular expression for the ASCII decimals from 0 to ``limit`` (leading zeros allowed)."""
    digits = str(limit)
    width = len(digits)
    shorter = [f"[0-9]{{1,{width - 1}}}"] if width > 1 else []
    below = [
        f"{digits[:at]}[0-{int(digit) - 1}]" + (f"[0-9]{{{width - at - 1}}}" if at < width - 1 else "")
        for at, digit in enumerate(digits)
        if digit != "0"
    ]
    return "^(?:" + "|".join([*shorter, *below, digits]) + ")$"


CURSOR_PATTERN = _decimals_up_to(_INT64_MAX)
"""What a ``next_cursor`` can be: a row's sequence number, so a 64-bit integer in ASCII digits."""


async def _load(conn: AsyncConnection, job_id: str, scope: str | None) -> Any:
    query = job_select().where(JOBS.c.id == job_id)
    if scope is not None:
        query = query.where(JOBS.c.namespace == scope)
    row = (await conn.execute(query)).first()
    if row is None:
        raise JobNotFound(f"no job has id {job_id!r}", job_id=job_id)
    return decoded(row)


async def get(coord: Coordinator, job_id: str, scope: str | None) -> JobPublic:
    async with coord.db.read() as conn:
        return public_job(await _load(conn, job_id, scope))


async def get_when_changed(
    coord: Coordinator, job_id: str, scope: str | None, wait_s: float, seen_state: JobState | None = None
) -> JobPublic:
    """The job once its state differs from ``seen_state`` (default: the one it has when asked), or
    after ``wait_s`` seconds (at most the long-poll setting); a job that has ended is answered at once.

    A caller that passes the state it last saw misses no move made between its two requests.

    Waits on ``coord.job_changes``, which every claim, completion, release, cancel, requeue and
    reaper pass moves; each wake-up re-reads the job.
    """
    deadline = time.monotonic() + min(wait_s, coord.settings.long_poll_s)
    seen = coord.job_changes.version
    job = await get(coord, job_id, scope)
    asked_in = seen_state or job.state
    while job.state is asked_in and not job.state.is_terminal and not coord.job_changes.closed:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        await coord.job_changes.wait(seen, remaining)
        seen = coord.job_changes.version
        job = await get(coord, job_id, scope)
    return job


def _cursor_seq(cursor: str) -> int:
    """The seq a ``next_cursor`` stands for: ASCII digits within a 64-bit integer, nothing else."""
    if re.fullmatch(CURSOR_PATTERN, cursor) is None:
        raise InvalidParams("cursor must be a value returned as next_cursor", field="cursor")
    return int(cursor)


async def list_jobs(
    coord: Coordinator,
    scope: str | None,
    *,
    state: JobState | None,
    job_type: str | None,
    limit: int,
    cursor: str | None,
) -> JobPage:
    """Newest first; ``cursor`` is the opaque value ``next_cursor`` gave."""
    query = job_select().order_by(JOBS.c.seq.desc()).limit(limit + 1)
    if scope is not None:
        query = query.where(JOBS.c.namespace == scope)
    if state is not None:
        query = query.where(JOBS.c.state == state.value)
    if job_type is not None:
        query = query.where(JOBS.c.type == job_type)
    if cursor is not None:
        query = query.where(JOBS.c.seq < _cursor_seq(cursor))
    async with coord.db.read() as conn:
        rows = (await conn.execute(query)).all()
    next_cursor = str(rows[limit - 1].seq) if len(rows) > limit else None
    return JobPage(jobs=public_jobs([decoded(row) for row in rows[:limit]]), next_cursor=next_cursor)


async def job_events(
    coord: Coordinator, job_id: str, scope: str | None, *, all: bool = False
) -> list[JobEventPublic]:
    async with coord.db.read() as conn:
        await _load(conn, job_id, scope)
        return await events.list_for_job(conn, job_id, all=all)


_ENDED_BY_CANCEL = (JobState.SCHEDULED.value, JobState.QUEUED.value, JobState.FAILED.value)


async def cancel(coord: Coordinator, job_id: str, scope: str | None) -> JobPublic:
    """Scheduled, queued or waiting jobs end at once; a running one is asked to stop at its next
    heartbeat. A completed job whose ``then`` created jobs cancels those that have not ended
    (and theirs, down the chain); the job itself stays completed."""
    now = coord.clock()
    async with coord.db.write() as conn:
        if coord.db.dialect.locks_rows:
            # Held until the update: no replica queues, claims or finishes the job in between.
            await conn.execute(select(JOBS.c.id).where(JOBS.c.id == job_id).with_for_update())
        row = await _load(conn, job_id, scope)
        state = JobState(row.state)
        if state.value in _ENDED_BY_CANCEL or state is JobState.PROCESSING:
            log = await _cancel_rows(conn, [row], now)
        elif not (state is JobState.COMPLETED and (log := await _cancel_descendants(conn, coord, row, now))):
            raise InvalidState(
                f"job {job_id} is {state.value}; only scheduled, queued, failed or processing jobs"
                " (or a completed job whose then steps still run) can be cancelled",
                state=state.value,
            )
        await events.record(conn, log, now)
        job = public_job(await _load(conn, job_id, scope))
    coord.job_changes.notify()
    coord.events.notify()
    return job


async def _cancel_rows(
    conn: AsyncConnection, rows: list[Any], now: float, detail: str | None = None
) -> list[events.Event]:
    """End or stop ``rows`` (each with id, state and attempts, locked by the caller)."""
    log: list[events.Event] = []
    for row in rows:
        values: dict[str, Any] = {"cancel_requested": True}
        if row.state in _ENDED_BY_CANCEL:
            values.update(state=JobState.CANCELLED.value, ended_at=now)
        await conn.execute(update(JOBS).where(JOBS.c.id == row.id).values(**values))
        log.append(events.Event(row.id, "cancel_requested", row.attempts, detail=detail))
        if "state" in values:
            log.append(events.state_event(row.id, JobState.CANCELLED, row.attempts))
    return log


async def _cancel_descendants(
    conn: AsyncConnection, coord: Coordinator, parent: Any, now: float
) -> list[events.Event]:
    """Cancel the jobs down ``parent``'s chain that have not ended; no events when none."""
    alive: list[Any] = []
    level = [parent.id]
    while level:
        query = select(JOBS.c.id, JOBS.c.state, JOBS.c.attempts).where(JOBS.c.parent_id.in_(level))
        if coord.db.dialect.locks_rows:
            query = query.with_for_update()
        rows = (await conn.execute(query.order_by(JOBS.c.id))).all()  # lock order: see leases
        alive += [row for row in rows if row.state in (*_ENDED_BY_CANCEL, JobState.PROCESSING.value)]
        level = [row.id for row in rows]
    return await _cancel_rows(conn, alive, now, detail=f"with the chain of job {parent.id}")


async def requeue(coord: Coordinator, job_id: str, scope: str | None) -> JobPublic:
    """Give a failed, dead or cancelled job a fresh set of attempts."""
    now = coord.clock()
    async with coord.db.write() as conn:
        row = await _load(conn, job_id, scope)
        state = JobState(row.state)
        if state not in REQUEUEABLE_STATES:
            allowed = ", ".join(sorted(s.value for s in REQUEUEABLE_STATES))
            raise InvalidState(
                f"job {job_id} is {state.value}; only {allowed} jobs can be requeued", state=state.value
            )
        await conn.execute(
            update(JOBS)
            .where(JOBS.c.id == job_id)
            .values(
                state=JobState.QUEUED.value,
                attempts=0,
                available_at=None,
                ended_at=None,
                cancel_requested=False,
                lease_token=None,
                last_lease_token=None,
                lease_expires_at=None,
                worker_id=None,
                declined_by=None,
                webhook_state=case((JOBS.c.webhook_url.is_not(None), "waiting"), else_=None),
                webhook_attempts=0,
                webhook_next_at=None,
                progress=None,
                progress_message=None,
            )
        )
        requeued = events.Event(job_id, "requeued", detail=f"was {state.value}")
        await events.record(conn, [requeued, events.state_event(job_id, JobState.QUEUED, 0)], now)
        job = public_job(await _load(conn, job_id, scope))
    coord.notifier.notify()
    coord.job_changes.notify()
    coord.events.notify()
    return job


async def output_blob(coord: Coordinator, job_id: str, name: str, scope: str | None) -> dict[str, Any]:
    """The stored output named ``name`` (its blob key, size, digest)."""
    async with coord.db.read() as conn:
        row = await _load(conn, job_id, scope)
    for entry in row.outputs:
        if entry["name"] == name:
            return dict(entry)
    raise FileNotFound(f"job {job_id} has no output named {name!r}", job_id=job_id, name=name)
