"""The job counts query of /metrics and ``GET /stats`` at 100k jobs, with and without ix_jobs_counts.

Fills a fresh coordinator database (a SQLite file unless ``--database-url`` names another) with
``--jobs`` rows spread over namespaces, types, priorities and states, runs ANALYZE, then times
server.services.counts.job_counts for every namespace and for one, and the query stats ran
before (grouped by type, priority and state only), each ``--runs`` times; then drops the index,
analyses again and times the same queries. Prints the median of each in milliseconds.

Usage: python -m bench.counts_query [--jobs 100000] [--runs 20] [--database-url URL]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from sqlalchemy import func, insert, select, text

from taskpost.server.db.database import Database
from taskpost.server.services import counts
from taskpost.server.services.jobs import JOBS
from taskpost.server.settings import Settings

NAMESPACES = [f"tenant-{i}" for i in range(8)]
TYPES = ["noop", "transcription", "ocr", "url_audio", "document", "resize"]
STATES = ["queued", "processing", "completed", "completed", "completed", "failed", "dead", "cancelled"]


def _row(rng: random.Random) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "namespace": rng.choice(NAMESPACES),
        "type": rng.choice(TYPES),
        "state": rng.choice(STATES),
        "priority": rng.choice([0, 1, 1, 1, 2]),
        "params": {},
        "meta": {},
        "max_attempts": 3,
        "retry": {"base_s": 1.0, "factor": 2.0, "cap_s": 300.0},
        "labels": "[]",
        "inputs": [],
        "outputs": [],
        "created_at": time.time(),
    }


async def _fill(db: Database, jobs: int) -> None:
    rng = random.Random(11)
    async with db.write() as conn:
        for start in range(0, jobs, 5000):
            await conn.execute(insert(JOBS), [_row(rng) for _ in range(min(5000, jobs - start))])


async def _median_ms(db: Database, runs: int, query: Callable[[Any], Awaitable[object]]) -> float:
    times = []
    for _ in range(runs):
        async with db.read() as conn:
            started = time.perf_counter()
            await query(conn)
            times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


async def _old_stats_query(conn: Any) -> object:
    query = (
        select(JOBS.c.type, JOBS.c.priority, JOBS.c.state, func.count())
        .group_by(JOBS.c.type, JOBS.c.priority, JOBS.c.state)
        .order_by(JOBS.c.type, JOBS.c.priority.desc(), JOBS.c.state)
    )
    return (await conn.execute(query)).all()


async def _analyze(db: Database) -> None:
    if db.dialect.name == "postgresql":
        # VACUUM sets the visibility map, without which PostgreSQL never scans an index alone.
        async with db.engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text("VACUUM ANALYZE jobs"))
        return
    async with db.write() as conn:
        await conn.execute(text("ANALYZE"))


async def _measure(db: Database, runs: int) -> dict[str, float]:
    await _analyze(db)
    return {
        "all namespaces": await _median_ms(db, runs, counts.job_counts),
        "one namespace": await _median_ms(db, runs, lambda conn: counts.job_counts(conn, NAMESPACES[0])),
        "old stats query": await _median_ms(db, runs, _old_stats_query),
    }


async def main(jobs: int, runs: int, database_url: str | None, work: Path) -> None:
    settings = Settings(_env_file=None, data_dir=work, database_url=database_url)
    db = Database.from_settings(settings)
    await db.create_schema(auto_migrate=True)
    try:
        await _fill(db, jobs)
        with_index = await _measure(db, runs)
        async with db.write() as conn:
            await conn.execute(text("DROP INDEX ix_jobs_counts"))
        without_index = await _measure(db, runs)
    finally:
        await db.close()
    print(f"{db.dialect.name}, {jobs} jobs, median of {runs} runs (ms):")
    print(f"{'query':<18} {'without index':>14} {'with ix_jobs_counts':>20}")
    for name in with_index:
        print(f"{name:<18} {without_index[name]:>14.1f} {with_index[name]:>20.1f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        asyncio.run(main(args.jobs, args.runs, args.database_url, Path(work)))
