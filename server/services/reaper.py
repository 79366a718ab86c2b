"""Background upkeep: expired leases, overdue attempts, due retries and scheduled jobs, jobs out
of total time, and then the blob collector (server.services.blob_gc).

One pass is a few indexed queries; it runs every ``reaper_interval_s``, first recording that
this replica is alive (server.services.replicas). In between, the loop sleeps until the next
due time and queues what fell due (server.services.schedule). Every change is a conditional
update, so several coordinators sharing a database may all run it: a job changes state once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from sqlalchemy import and_, delete, select, update

from taskpost.protocol import JobState
from taskpost.server.coordinator import Coordinator
from taskpost.server.db.models import DashboardSession
from taskpost.server.services import attempt_outputs, blob_gc, events, replicas, retention, schedule
from taskpost.server.services.jobs import JOBS
from taskpost.server.services.transitions import ATTEMPT_COLUMNS, AttemptFailure, after_failure

logger = logging.getLogger(__name__)

LEASE_EXPIRED = "lease_expired"
DASHBOARD_SESSIONS = DashboardSession.__table__  # type: ignore[attr-defined]

_OVERDUE_COLUMNS = (
    *ATTEMPT_COLUMNS,
    JOBS.c.timeout_s,
    JOBS.c.attempt_started_at,
    JOBS.c.lease_expires_at,
    JOBS.c.type,
)


async def reap_once(coord: Coordinator) -> int:
    """One pass; returns how many jobs changed state."""
    now = coord.clock()
    changed = 0
    woke_queue = False
    async with coord.db.write() as conn:
        grace = coord.settings.timeout_grace_s
        overdue = select(*_OVERDUE_COLUMNS).where(
            JOBS.c.state == JobState.PROCESSING.value,
            (JOBS.c.lease_expires_at < now)
            | (JOBS.c.timeout_s.is_not(None) & (JOBS.c.attempt_started_at + JOBS.c.timeout_s + grace < now)),
        )
        if coord.db.dialect.locks_rows:
            # A row an agent's completion or heartbeat holds is passed by (the next pass reads
            # what it wrote); a row taken is re-read as it is now, and held until the update.
            overdue = overdue.with_for_update(skip_locked=True)
        running = (await conn.execute(overdue)).all()
        log: list[events.Event] = []
        ended: list[str] = []
        failures: list[tuple[str, str, str]] = []  # (type, kind, new state), counted once committed
        for row in running:
            failure = _why_overdue(row, now)
            values = after_failure(row, failure, now)
            result = await conn.execute(
                update(JOBS)
                .where(
                    JOBS.c.id == row.id,
                    JOBS.c.lease_token == row.lease_token,
                    JOBS.c.state == JobState.PROCESSING.value,
                )
                .values(**values)
            )
            if result.rowcount:
                changed += 1
                ended.append(row.id)
                failures.append((row.type, failure.kind, values["state"]))
                woke_queue = woke_queue or values["state"] == JobState.QUEUED.value
                log.append(
                    events.Event(
                        row.id,
                        failure.kind,
                        row.attempts,
                        row.worker_id,
                        f"{failure.message} -> {values['state']}",
                    )
                )
                log.append(events.state_event(row.id, JobState(values["state"]), row.attempts, row.worker_id))
        await attempt_outputs.drop(conn, ended)
        due = await schedule.queue_due(conn, now)
        if due:
            changed += due
            woke_queue = True
        out_of_time = await conn.execute(
            update(JOBS)
            .where(
                JOBS.c.state.in_([JobState.QUEUED.value, JobState.FAILED.value]),
                JOBS.c.total_timeout_s.is_not(None),
                and_(JOBS.c.created_at + JOBS.c.total_timeout_s < now),
            )
            .values(
                state=JobState.DEAD.value,
                ended_at=now,
                error={
                    "message": "total_timeout_s passed before the job could finish",
                    "kind": "total_timeout",
                    "retryable": False,
                },
            )
            .returning(JOBS.c.id, JOBS.c.type)
        )
        out_of_time_types: list[str] = []
        for job_id, job_type in out_of_time:
            changed += 1
            out_of_time_types.append(job_type)
            log.append(events.Event(job_id, "total_timeout", detail="-> dead"))
            log.append(events.state_event(job_id, JobState.DEAD))
        await events.record(conn, log, now)
        # Dashboard sign-ins past their end (read through ix_dashboard_sessions_expires_at).
        await conn.execute(delete(DASHBOARD_SESSIONS).where(DASHBOARD_SESSIONS.c.expires_at <= now))
    _count(coord, failures, out_of_time_types)
    if woke_queue:
        coord.notifier.notify()
    if changed:
        coord.job_changes.notify()
        coord.events.notify()
    return changed


def _count(coord: Coordinator, failures: list[tuple[str, str, str]], out_of_time_types: list[str]) -> None:
    """Metrics of a committed pass: attempts ended overdue, and jobs out of total time."""
    for job_type, kind, state in failures:
        coord.metrics.failed_attempt_went(job_type, kind, state)
        if kind == LEASE_EXPIRED:
            coord.metrics.lease_expired(job_type)
    for job_type in out_of_time_types:
        coord.metrics.dead(job_type)


def _why_overdue(row: Any, now: float) -> AttemptFailure:
    if (
        row.timeout_s is not None
        and row.attempt_started_at + row.timeout_s < now
        and (row.lease_expires_at is None or row.lease_expires_at >= now)
    ):
        return AttemptFailure(f"attempt {row.attempts} ran past timeout_s={row.timeout_s}", "timeout")
    return AttemptFailure(
        f"lease expired: agent {row.worker_id} stopped heartbeating during attempt {row.attempts}",
        LEASE_EXPIRED,
        retry_delay_s=0,  # the agent is gone, not the task at fault: back in the queue at once
    )


async def run_forever(coord: Coordinator) -> None:
    while True:
        # The collector runs even when the reap failed: one must not starve the other.
        steps = (
            ("liveness", replicas.beat),
            ("reap", reap_once),
            ("retention", retention.apply_retention),
            ("blob_gc", blob_gc.collect),
        )
        for action, upkeep in steps:
            try:
                await upkeep(coord)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("%s pass failed", action, extra={"action": action})
        await _between_passes(coord, time.monotonic() + coord.settings.reaper_interval_s)


async def _between_passes(coord: Coordinator, until: float) -> None:
    """Queue scheduled jobs and due retries as they fall due until the next pass."""
    try:
        await schedule.run_until(coord, until)
    except asyncio.CancelledError:
        raise
    except Exception:
        logger.exception("schedule pass failed", extra={"action": "schedule"})
        await asyncio.sleep(max(0.0, until - time.monotonic()))
