"""Job counts by namespace, type, priority and state: one covering scan of ix_jobs_counts.

Grouping by every column of that index lets the database count from the index alone
(docs/metrics.md has the timings at 100k jobs); callers add namespaces up as they need.
"""

from __future__ import annotations

import time

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from taskpost.protocol import Priority
from taskpost.server.coordinator import Coordinator
from taskpost.server.metrics import JobCount
from taskpost.server.services import workers
from taskpost.server.services.jobs import JOBS


async def job_counts(conn: AsyncConnection, scope: str | None = None) -> list[JobCount]:
    """The counts of ``scope``'s jobs (None: every namespace), ordered by type, priority (best
    first), state, then namespace."""
    columns = (JOBS.c.namespace, JOBS.c.type, JOBS.c.priority, JOBS.c.state)
    query = (
        select(*columns, func.count())
        .group_by(*columns)
        # Sorted after grouping (few rows), by the database, so the order is its collation's.
        .order_by(JOBS.c.type, JOBS.c.priority.desc(), JOBS.c.state, JOBS.c.namespace)
    )
    if scope is not None:
        query = query.where(JOBS.c.namespace == scope)
    rows = (await conn.execute(query)).all()
    return [
        JobCount(namespace, job_type, Priority.from_rank(rank).value, state, count)
        for namespace, job_type, rank, state, count in rows
    ]


async def refresh_metrics(coord: Coordinator) -> None:
    """Set the table gauges of ``coord.metrics`` from the tables, unless they were set less than
    ``metrics_counts_ttl_s`` ago in this process (each scraper of each replica would count again)."""
    now = time.monotonic()
    read_at = coord.metrics.table_read_at
    if read_at is not None and now - read_at < coord.settings.metrics_counts_ttl_s:
        return
    async with coord.db.read() as conn:
        counts = await job_counts(conn)
    agents = await workers.list_workers(coord)
    coord.metrics.set_tables(counts, agents, now)
