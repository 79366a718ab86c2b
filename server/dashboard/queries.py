"""What the dashboard's pages read: counts, per-minute activity, dead-letter groups, a narrow list.

Each query is scoped to the visitor's namespace (None: every namespace, an admin) and reads
only the columns its page shows; the list's filters each meet an index (docs/benchmarks.md).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Integer, Text, cast, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from taskpost.protocol import JobState, Priority
from taskpost.server.db.models import JobEvent
from taskpost.server.services.counts import job_counts
from taskpost.server.services.jobs import JOBS

EVENTS = JobEvent.__table__  # type: ignore[attr-defined]
PAGE_SIZE = 50
MAX_DEAD_ROWS = 10_000
"""Dead jobs read for the grouping; more are counted in their group's total only up to this."""
FAILURE_KINDS = ("attempt_failed", "lease_expired", "timeout", "total_timeout")
"""Event kinds that count as a failure in the overview's sparkline."""
STATE_ORDER = [state.value for state in JobState]

_LIST_COLUMNS = (
    JOBS.c.seq,
    JOBS.c.id,
    JOBS.c.namespace,
    JOBS.c.type,
    JOBS.c.state,
    JOBS.c.priority,
    JOBS.c.attempts,
    JOBS.c.max_attempts,
    JOBS.c.progress,
    JOBS.c.created_at,
    JOBS.c.ended_at,
)


@dataclass(frozen=True)
class ListFilters:
    state: str | None = None
    job_type: str | None = None
    priority: Priority | None = None
    id_prefix: str | None = None
    before_seq: int | None = None


@dataclass
class CountRow:
    type: str
    priority: str
    states: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.states.values())


async def list_page(
    conn: AsyncConnection, scope: str | None, filters: ListFilters
) -> tuple[list[Any], int | None]:
    """Up to PAGE_SIZE jobs, newest first, and the ``seq`` to continue below (None: no more)."""
    query = select(*_LIST_COLUMNS).order_by(JOBS.c.seq.desc()).limit(PAGE_SIZE + 1)
    if scope is not None:
        query = query.where(JOBS.c.namespace == scope)
    if filters.state is not None:
        query = query.where(JOBS.c.state == filters.state)
    if filters.job_type is not None:
        query = query.where(JOBS.c.type == filters.job_type)
    if filters.priority is not None:
        query = query.where(JOBS.c.priority == filters.priority.rank)
    if filters.id_prefix is not None:
        # A range, not LIKE: SQLite's LIKE ignores case and so cannot use the primary key.
        query = query.where(JOBS.c.id >= filters.id_prefix, JOBS.c.id < filters.id_prefix + "~")
    if filters.before_seq is not None:
        query = query.where(JOBS.c.seq < filters.before_seq)
    rows = list((await conn.execute(query)).all())
    more = len(rows) > PAGE_SIZE
    return rows[:PAGE_SIZE], (rows[PAGE_SIZE - 1].seq if more else None)


async def count_rows(conn: AsyncConnection, scope: str | None) -> list[CountRow]:
    """Counts per type and priority (namespaces added up), each with its counts per state."""
    rows: dict[tuple[str, str], CountRow] = {}
    for count in await job_counts(conn, scope):
        row = rows.setdefault((count.type, count.priority), CountRow(count.type, count.priority))
        row.states[count.state] = row.states.get(count.state, 0) + count.count
    return list(rows.values())


async def per_minute(
    conn: AsyncConnection, scope: str | None, now: float, minutes: int = 60
) -> dict[str, list[int]]:
    """Completions and failures in each of the last ``minutes`` minutes, oldest first."""
    start = now - minutes * 60
    completed_minute = cast(cast(JOBS.c.ended_at - start, Integer) / 60, Integer)
    completed = (
        select(completed_minute, func.count())
        .where(JOBS.c.state == JobState.COMPLETED.value, JOBS.c.ended_at >= start)
        .group_by(completed_minute)
    )
    failed_minute = cast(cast(EVENTS.c.at - start, Integer) / 60, Integer)
    failed = (
        select(failed_minute, func.count())
        .where(EVENTS.c.kind.in_(FAILURE_KINDS), EVENTS.c.at >= start)
        .group_by(failed_minute)
    )
    if scope is not None:
        completed = completed.where(JOBS.c.namespace == scope)
        failed = failed.join(JOBS, JOBS.c.id == EVENTS.c.job_id).where(JOBS.c.namespace == scope)
    series: dict[str, list[int]] = {}
    for name, query in (("completed", completed), ("failed", failed)):
        buckets = [0] * minutes
        for minute, count in await conn.execute(query):
            if minute is not None and 0 <= minute <= minutes:
                # The current moment is minute ``minutes``: it counts in the last bucket.
                buckets[min(minute, minutes - 1)] += count
        series[name] = buckets
    return series


@dataclass
class DeadGroup:
    kind: str
    message: str
    """The newest job's error message, as an example of the group."""
    jobs: list[Any] = field(default_factory=list)


async def dead_groups(conn: AsyncConnection, scope: str | None) -> list[DeadGroup]:
    """Dead jobs grouped by their error's kind, largest group first, newest job first in each."""
    query = (
        select(
            JOBS.c.id, JOBS.c.type, JOBS.c.ended_at, JOBS.c.attempts, cast(JOBS.c.error, Text).label("error")
        )
        .where(JOBS.c.state == JobState.DEAD.value)
        .order_by(JOBS.c.ended_at.desc())
        .limit(MAX_DEAD_ROWS)
    )
    if scope is not None:
        query = query.where(JOBS.c.namespace == scope)
    groups: dict[str, DeadGroup] = {}
    for row in await conn.execute(query):
        kind, message = _error_kind(row.error)
        groups.setdefault(kind, DeadGroup(kind, message)).jobs.append(row)
    return sorted(groups.values(), key=lambda group: -len(group.jobs))


def _error_kind(raw: str | None) -> tuple[str, str]:
    """The error's kind and message; text that is not a JSON object (older rows) is its own kind."""
    try:
        error = json.loads(raw) if raw is not None else None
    except ValueError:
        return "unreadable", ""
    if not isinstance(error, dict):
        return "unknown", ""
    return str(error.get("kind") or "unknown"), str(error.get("message") or "")


def states_seen(rows: list[CountRow]) -> list[str]:
    """The states any row has, in the order of the state machine."""
    seen: set[str] = set()
    for row in rows:
        seen.update(row.states)
    return [state for state in STATE_ORDER if state in seen]
