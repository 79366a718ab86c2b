"""Queue statistics, like ``rq info``."""

from __future__ import annotations

from collections import Counter

from taskpost.protocol import QueueCount, Stats
from taskpost.server.coordinator import Coordinator
from taskpost.server.services import counts, workers


async def stats(coord: Coordinator, scope: str | None = None) -> Stats:
    """Counts of ``scope``'s jobs (None: every namespace) and the agents that serve it."""
    async with coord.db.read() as conn:
        rows = await counts.job_counts(conn, scope)
    # The rows come per namespace, ordered by type, priority and state first: adding the
    # namespaces up keeps that order.
    merged: dict[tuple[str, str, str], int] = {}
    for row in rows:
        key = (row.type, row.priority, row.state)
        merged[key] = merged.get(key, 0) + row.count
    queue_counts = [
        QueueCount(type=job_type, priority=priority, state=state, count=count)
        for (job_type, priority, state), count in merged.items()
    ]
    totals: Counter[str] = Counter()
    for entry in queue_counts:
        totals[entry.state] += entry.count
    agents = await workers.list_workers(coord, namespace=scope)
    return Stats(counts=queue_counts, totals=dict(totals), workers=agents)
