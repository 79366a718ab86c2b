"""Queue statistics, like ``rq info``."""

from __future__ import annotations

from collections import Counter

from sqlalchemy import func, select

from taskpost.protocol import Priority, QueueCount, Stats
from taskpost.server.coordinator import Coordinator
from taskpost.server.services import workers
from taskpost.server.services.jobs import JOBS


async def stats(coord: Coordinator, scope: str | None = None) -> Stats:
    """Counts of ``scope``'s jobs (None: every namespace) and the agents that serve it."""
    query = (
        select(JOBS.c.type, JOBS.c.priority, JOBS.c.state, func.count())
        .group_by(JOBS.c.type, JOBS.c.priority, JOBS.c.state)
        .order_by(JOBS.c.type, JOBS.c.priority.desc(), JOBS.c.state)
    )
    if scope is not None:
        query = query.where(JOBS.c.namespace == scope)
    async with coord.db.read() as conn:
        rows = (await conn.execute(query)).all()
    counts = [
        QueueCount(type=job_type, priority=Priority.from_rank(rank).value, state=state, count=count)
        for job_type, rank, state, count in rows
    ]
    totals: Counter[str] = Counter()
    for entry in counts:
        totals[entry.state] += entry.count
    agents = await workers.list_workers(coord, namespace=scope)
    return Stats(counts=counts, totals=dict(totals), workers=agents)
