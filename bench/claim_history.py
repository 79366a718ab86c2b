"""Claim cost as history grows: submit-to-start with an empty table and with N finished jobs.

For each database (SQLite, and PostgreSQL on a throwaway cluster from bench/pg_cluster.py), two
coordinators side by side, both with retention off and one idle agent each (``--max-concurrent 1``):

- one on an empty table;
- one whose tables got ``--finished`` finished jobs and their events with direct SQL
  (bench/history_fill.py) between a first start (which created them) and a second, then ANALYZE
  as an operator would run it (VACUUM ANALYZE on PostgreSQL, what autovacuum does after that many
  inserts; ``--no-analyze`` skips it).

``--samples`` no-op jobs go to each, one at a time, alternating between the two so that both see
the same load on this machine; each sample is ``started_at - created_at`` (both stamped by the
coordinator). Then the claim statement the coordinator runs (server/db/dialects) is explained on
the filled table, with the parameters of its agent.

Run from the repository root:
python -m bench.claim_history [--finished 1000000] [--samples 200] [--sqlite] [--postgres]
(neither flag: both databases).
"""

from __future__ import annotations

import argparse
import asyncio
import re
import signal
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import httpx

from bench.history_fill import History, fill_postgres, fill_sqlite
from bench.pg_cluster import throwaway_cluster
from bench.postgres_scaling import NO_RETENTION, pickup_latencies
from taskpost.launch import ChildProcess, LocalCoordinator, wait_until
from taskpost.protocol import API_PREFIX
from taskpost.server.db.dialects.postgres import PostgresDialect
from taskpost.server.db.dialects.sqlite import SqliteDialect
from tests.support.postgres import PostgresCluster

WARMUP = 5
"""Samples taken and dropped after each (re)start: the first requests open connections."""


@dataclass
class Case:
    database: str
    finished: int
    latencies: list[float]

    @property
    def p50_ms(self) -> float:
        return statistics.median(self.latencies) * 1000

    @property
    def p99_ms(self) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] * 1000


@dataclass
class Setup:
    """One coordinator with retention off, its admin client and a worker key."""

    coordinator: LocalCoordinator
    database_url: str | None
    admin: httpx.Client
    worker_key: str = ""

    @property
    def sqlite_file(self) -> Path:
        return self.coordinator.work / "data" / "taskpost.db"

    def start_agent(self, name: str) -> tuple[ChildProcess, dict[str, Any]]:
        """An idle agent named ``name``, once the coordinator lists it alive."""
        agent = self.coordinator.start_agent(
            self.worker_key, "--name", name, "--log-level", "warning", log_name=f"{name}.log"
        )

        def registered() -> dict[str, Any] | None:
            workers: list[dict[str, Any]] = self.admin.get("/workers").json()
            return next((w for w in workers if w["name"] == name and w["alive"]), None)

        return agent, wait_until(registered, 60, f"agent {name}")

    def finished_jobs(self) -> int:
        totals = self.admin.get("/stats").json()["totals"]
        return sum(totals.get(state, 0) for state in ("completed", "dead", "cancelled"))


@contextmanager
def setup(work: Path, database_url: str | None) -> Iterator[Setup]:
    settings = dict(NO_RETENTION)
    if database_url is not None:
        settings["TASKPOST_DATABASE_URL"] = database_url
    coordinator = LocalCoordinator(work, settings=settings).start()
    auth = {"Authorization": f"Bearer {coordinator.admin_key}"}
    admin = httpx.Client(base_url=coordinator.url + API_PREFIX, headers=auth, timeout=60)
    try:
        response = admin.post("/keys", json={"role": "worker"})
        response.raise_for_status()
        yield Setup(coordinator, database_url, admin, response.json()["key"])
    finally:
        admin.close()
        coordinator.stop()


def interleaved_latencies(empty: Setup, full: Setup, samples: int) -> tuple[list[float], list[float]]:
    """``samples`` pickups on each, alternating, so that both see the same load on the machine."""
    pickup_latencies(empty.admin, WARMUP)
    pickup_latencies(full.admin, WARMUP)
    on_empty: list[float] = []
    on_full: list[float] = []
    for _ in range(samples):
        on_empty += pickup_latencies(empty.admin, 1)
        on_full += pickup_latencies(full.admin, 1)
    return on_empty, on_full


# --- the claim statement's plan -----------------------------------------------------------------


def _claim_params(worker: dict[str, Any]) -> dict[str, Any]:
    now = time.time()
    params: dict[str, Any] = {
        "worker_id": worker["id"],
        "now": now,
        "lease_expires_at": now + 30,
        "limit": 1,
        "worker_type": worker["worker_type"],
    }
    params.update({f"type_{i}": task_type for i, task_type in enumerate(worker["task_types"])})
    if worker["labels"]:
        params["worker_labels"] = str(worker["labels"]).replace("'", '"')
    return params


def _claim_sql(dialect: SqliteDialect | PostgresDialect, worker: dict[str, Any]) -> str:
    statement = dialect.claim_statement(
        type_count=len(worker["task_types"]), with_labels=bool(worker["labels"]), namespace_count=0
    )
    return str(statement.element)


def sqlite_plan(database: Path, worker: dict[str, Any]) -> str:
    db = sqlite3.connect(database)
    try:
        rows = db.execute("EXPLAIN QUERY PLAN " + _claim_sql(SqliteDialect(), worker), _claim_params(worker))
        return "\n".join(f"{'  ' * (parent > 0)}{detail}" for _, parent, _, detail in rows)
    finally:
        db.close()


async def postgres_plan(url: str, worker: dict[str, Any]) -> str:
    params = _claim_params(worker)
    names: list[str] = []

    def positional(match: re.Match[str]) -> str:
        names.append(match.group(1))
        return f"${len(names)}"

    sql = re.sub(r"(?<![:\w]):([a-z_]\w*)", positional, _claim_sql(PostgresDialect(), worker))
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch("EXPLAIN " + sql, *(params[name] for name in names))
        return "\n".join(row[0] for row in rows)
    finally:
        await conn.close()


# --- one database ------------------------------------------------------------------------------


def run_database(
    cluster: PostgresCluster | None, finished: int, samples: int, analyze: bool
) -> tuple[list[Case], str]:
    """The same pickups on two coordinators side by side: one on an empty table, one on a table
    filled with ``finished`` jobs; and the plan of the claim on the filled one."""
    database = "postgresql" if cluster is not None else "sqlite"
    with ExitStack() as stack:
        urls: list[str | None] = [None, None]
        if cluster is not None:
            for index in range(2):
                url = cluster.create_database()
                stack.callback(cluster.drop_database, url)
                urls[index] = url
        empty, full = (
            stack.enter_context(setup(Path(stack.enter_context(tempfile.TemporaryDirectory())), url))
            for url in urls
        )
        full.coordinator.stop()  # it created the tables; now fill them
        history = History(finished, time.time())
        began = time.perf_counter()
        if full.database_url is None:
            events = fill_sqlite(full.sqlite_file, history, analyze=analyze)
        else:
            events = asyncio.run(fill_postgres(full.database_url, history, analyze=analyze))
        took = time.perf_counter() - began
        print(f"{database}: {finished:,} jobs and {events:,} events inserted in {took:.1f} s", flush=True)
        full.coordinator.start()
        in_table = full.finished_jobs()
        assert in_table >= finished, f"{in_table} finished jobs in the table, not {finished}"

        agents = [empty.start_agent("history-empty"), full.start_agent("history-full")]
        for agent, _ in agents:
            stack.callback(agent.stop, signal.SIGTERM)
        on_empty, on_full = interleaved_latencies(empty, full, samples)
        worker = agents[1][1]
        if full.database_url is None:
            plan = sqlite_plan(full.sqlite_file, worker)
        else:
            plan = asyncio.run(postgres_plan(full.database_url, worker))
    return [Case(database, 0, on_empty), Case(database, finished, on_full)], plan


def report(cases: list[Case], plans: dict[str, str], analyze: bool) -> None:
    print("\n## Submit-to-start with finished jobs in the table (retention off)\n")
    print("| database | finished jobs | p50 ms | p99 ms | ratio to empty (p50) |")
    print("| --- | --- | --- | --- | --- |")
    empty = {case.database: case.p50_ms for case in cases if case.finished == 0}
    for case in cases:
        ratio = case.p50_ms / empty[case.database]
        cells = [case.database, f"{case.finished:,}", f"{case.p50_ms:.2f}", f"{case.p99_ms:.2f}"]
        cells.append(f"{ratio:.2f}x")
        print("| " + " | ".join(cells) + " |")
    samples = len(cases[0].latencies)
    print(f"\n{samples} samples per row after {WARMUP} dropped; ANALYZE after the fill: {analyze}.")
    for database, plan in plans.items():
        print(f"\n### Claim statement plan, {database}, with the finished jobs\n\n```\n{plan}\n```")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--finished", type=int, default=1_000_000, help="finished jobs to insert")
    parser.add_argument("--samples", type=int, default=200, help="latency samples per case")
    parser.add_argument("--sqlite", action="store_true", help="SQLite (neither flag: both)")
    parser.add_argument("--postgres", action="store_true", help="PostgreSQL (neither flag: both)")
    parser.add_argument("--no-analyze", dest="analyze", action="store_false", help="skip ANALYZE")
    args = parser.parse_args()
    both = not (args.sqlite or args.postgres)
    cases: list[Case] = []
    plans: dict[str, str] = {}
    if args.sqlite or both:
        found, plans["sqlite"] = run_database(None, args.finished, args.samples, args.analyze)
        cases += found
    if args.postgres or both:
        with throwaway_cluster() as cluster:
            found, plans["postgresql"] = run_database(cluster, args.finished, args.samples, args.analyze)
            cases += found
    report(cases, plans, args.analyze)


if __name__ == "__main__":
    main()
