"""Taskpost on PostgreSQL with coordinator replicas, beside SQLite.

Starts a throwaway PostgreSQL cluster (bench/pg_cluster.py), then coordinator replicas and
agents as child processes through the CLI, all on 127.0.0.1, every replica with
``TASKPOST_DATABASE_URL`` on one fresh database per case and one shared ``TASKPOST_DATA_DIR``:

1. pickup: one no-op job at a time to an idle, long-polling agent; ``started_at - created_at``
   (both stamped by coordinators on this machine's clock). Agent and submit on the same replica,
   then the agent on replica B and the submit on replica A (the LISTEN/NOTIFY wake-up), once
   with the default 1 s fallback re-check and once with it at 30 s, so that only NOTIFY can
   wake the agent in time;
2. drain: ``--jobs`` no-op jobs submitted in batches of 500 (alternating over the replicas),
   with 1, 2 and 4 agents (``--max-concurrent 8``) spread over 1 and 2 replicas; jobs/s from
   the first start to the last end;
3. history: pickup p50 with 0, 100k and 1M finished jobs in the table (inserted with SQL,
   retention off), on PostgreSQL and on SQLite.

Run from the repository root: python -m bench.postgres_scaling [--jobs 5000] [--samples 200]
[--history 0 100000 1000000] [--skip-history] [--skip-sqlite]
"""

from __future__ import annotations

import argparse
import secrets
import signal
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from bench.pg_cluster import throwaway_cluster
from taskpost.launch import ChildProcess, LocalCoordinator, wait_until
from taskpost.protocol import API_PREFIX
from tests.support.postgres import PostgresCluster

BATCH = 500
NO_RETENTION = {f"TASKPOST_RETAIN_{state}_S": "0" for state in ("COMPLETED", "DEAD", "CANCELLED")}


def _seconds(stamp: str) -> float:
    return datetime.fromisoformat(stamp).timestamp()


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


@dataclass
class Deployment:
    """Replicas on one database, their agents, and an admin client per replica."""

    work: Path
    database_url: str | None
    """None: SQLite, in the shared data folder."""
    replicas: list[LocalCoordinator]
    admins: list[httpx.Client]
    agents: list[ChildProcess]
    worker_key: str

    def add_agent(self, replica: int, *args: str) -> None:
        index = len(self.agents)
        agent_args = ["--name", f"bench-{index}", "--log-level", "warning", *args]
        coordinator = self.replicas[replica]
        self.agents.append(
            coordinator.start_agent(self.worker_key, *agent_args, log_name=f"agent-{index}.log")
        )

    def wait_agents(self) -> None:
        count = len(self.agents)
        wait_until(lambda: len(self.admins[0].get("/workers").json()) == count, 60, f"{count} agents")


@contextmanager
def fresh_database(cluster: PostgresCluster | None) -> Iterator[str | None]:
    """A new empty PostgreSQL database (dropped after), or None for SQLite."""
    if cluster is None:
        yield None
        return
    url = cluster.create_database()
    try:
        yield url
    finally:
        cluster.drop_database(url)


@contextmanager
def deployment(
    cluster: PostgresCluster | None, replicas: int, settings: dict[str, str]
) -> Iterator[Deployment]:
    """``replicas`` coordinators on a fresh database of ``cluster`` (None: SQLite) and one
    shared data folder; agents added to the result are stopped with them."""
    with tempfile.TemporaryDirectory(prefix="taskpost-bench-") as tmp, fresh_database(cluster) as url:
        work = Path(tmp)
        admin_key = secrets.token_urlsafe(24)
        shared = {"TASKPOST_ADMIN_KEY": admin_key, "TASKPOST_DATA_DIR": str(work / "data"), **settings}
        if url is not None:
            shared["TASKPOST_DATABASE_URL"] = url
        deploy = Deployment(work, url, [], [], [], "")
        try:
            for index in range(replicas):
                folder = work / f"replica-{index}"
                folder.mkdir()
                deploy.replicas.append(LocalCoordinator(folder, settings=shared).start())
                auth = {"Authorization": f"Bearer {admin_key}"}
                url_prefix = deploy.replicas[-1].url + API_PREFIX
                deploy.admins.append(httpx.Client(base_url=url_prefix, headers=auth, timeout=60))
            response = deploy.admins[0].post("/keys", json={"role": "worker"})
            response.raise_for_status()
            deploy.worker_key = response.json()["key"]
            yield deploy
        finally:
            for agent in deploy.agents:
                agent.stop(signal.SIGTERM)
            for coordinator in deploy.replicas:
                coordinator.stop()
            for admin in deploy.admins:
                admin.close()


def pickup_latencies(submit: httpx.Client, samples: int) -> list[float]:
    """Seconds from created_at to started_at of ``samples`` jobs submitted one at a time."""
    latencies = []
    for _ in range(samples):
        job = submit.post("/jobs", json={"type": "noop"}).json()["job"]

        def finished(job_id: str = job["id"]) -> dict[str, Any] | None:
            current: dict[str, Any] = submit.get(f"/jobs/{job_id}").json()
            return current if current["state"] == "completed" else None

        done = wait_until(finished, 30, "a latency sample", interval_s=0.01)
        latencies.append(_seconds(done["started_at"]) - _seconds(done["created_at"]))
    return latencies


def _summary(latencies: list[float]) -> dict[str, float]:
    return {
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": _percentile(latencies, 0.99) * 1000,
        "max_ms": max(latencies) * 1000,
    }


def _all_jobs(http: httpx.Client) -> list[dict[str, Any]]:
    jobs: list[dict[str, Any]] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 1000, **({"cursor": cursor} if cursor else {})}
        page = http.get("/jobs", params=params).json()
        jobs += page["jobs"]
        cursor = page["next_cursor"]
        if cursor is None:
            return jobs


# --- the three parts --------------------------------------------------------------------------


def run_pickup(cluster: PostgresCluster | None, samples: int) -> list[dict[str, Any]]:
    database = "postgresql" if cluster else "sqlite"
    cases: list[tuple[str, int, dict[str, str]]] = [("same replica", 1, {})]
    if cluster is not None:
        cases += [
            ("agent on B, submit on A", 2, {}),
            ("agent on B, submit on A, re-check 30 s", 2, {"TASKPOST_WAKEUP_RECHECK_S": "30"}),
        ]
    rows = []
    for label, replicas, settings in cases:
        with deployment(cluster, replicas, settings) as deploy:
            deploy.add_agent(replicas - 1)
            deploy.wait_agents()
            latencies = pickup_latencies(deploy.admins[0], samples)
        rows.append({"database": database, "case": label, "samples": samples, **_summary(latencies)})
        print(rows[-1], flush=True)
    return rows


def run_drain(
    cluster: PostgresCluster | None, jobs: int, agent_counts: list[int], replica_counts: list[int]
) -> list[dict[str, Any]]:
    database = "postgresql" if cluster else "sqlite"
    rows = []
    for replicas in replica_counts:
        for agents in agent_counts:
            with deployment(cluster, replicas, {}) as deploy:
                for index in range(agents):
                    deploy.add_agent(index % replicas, "--max-concurrent", "8")
                deploy.wait_agents()
                wall_start = time.perf_counter()
                for first in range(0, jobs, BATCH):
                    batch = [
                        {"type": "noop", "params": {"i": i}} for i in range(first, min(jobs, first + BATCH))
                    ]
                    admin = deploy.admins[(first // BATCH) % replicas]
                    admin.post("/jobs/batch", json={"jobs": batch}).raise_for_status()

                def completed(http: httpx.Client = deploy.admins[0]) -> bool:
                    count: int = http.get("/stats").json()["totals"].get("completed", 0)
                    return count >= jobs

                wait_until(completed, 600, "the jobs", interval_s=0.02)
                wall = time.perf_counter() - wall_start
                done = _all_jobs(deploy.admins[0])
            first_start = min(_seconds(job["started_at"]) for job in done)
            last_end = max(_seconds(job["ended_at"]) for job in done)
            seconds = last_end - first_start
            row = {"database": database, "replicas": replicas, "agents": agents, "jobs": jobs}
            row |= {"seconds": seconds, "jobs_per_s": jobs / seconds, "wall_s": wall}
            rows.append(row)
            print(row, flush=True)
    return rows


_COLUMNS = (
    "id, type, state, priority, params, meta, retry, labels, inputs, outputs,"
    " created_at, started_at, ended_at, attempts, max_attempts, cancel_requested"
)


def _history_rows_sql(first: int, last: int, now: float, postgres: bool) -> str:
    """An INSERT of finished no-op jobs numbered ``first..last``: 80% completed, 10% dead, 10% cancelled."""
    json = "::json" if postgres else ""
    false = "false" if postgres else "0"
    number = "g" if postgres else "n"
    state = f"CASE {number} % 10 WHEN 0 THEN 'dead' WHEN 1 THEN 'cancelled' ELSE 'completed' END"
    values = (
        f"'hist-' || {number}, 'noop', {state}, 0, '{{}}'{json}, '{{}}'{json}, '{{}}'{json}, '[]',"
        f" '[]'{json}, '[]'{json}, {now}, {now}, {now}, 1, 3, {false}"
    )
    if postgres:
        return f"INSERT INTO jobs ({_COLUMNS}) SELECT {values} FROM generate_series({first}, {last}) AS g"
    return (
        f"INSERT INTO jobs ({_COLUMNS}) WITH RECURSIVE s(n) AS (SELECT {first} UNION ALL"
        f" SELECT n + 1 FROM s WHERE n < {last}) SELECT {values} FROM s"
    )


def insert_history(deploy: Deployment, cluster: PostgresCluster | None, sql: str) -> None:
    """Run ``sql`` on the deployment's database, beside its running coordinator."""
    if cluster is None:
        with sqlite3.connect(deploy.work / "data" / "taskpost.db", timeout=60) as db:
            db.execute(sql)
        return
    assert deploy.database_url is not None
    name = urlsplit(deploy.database_url).path.lstrip("/")
    cluster.psql(sql, database=name)
    # What autovacuum would soon do after a change this large; SQLite keeps no statistics.
    cluster.psql("ANALYZE jobs", database=name)


def run_history(cluster: PostgresCluster | None, levels: list[int], samples: int) -> list[dict[str, Any]]:
    database = "postgresql" if cluster else "sqlite"
    rows = []
    with deployment(cluster, 1, NO_RETENTION) as deploy:
        deploy.add_agent(0)
        deploy.wait_agents()
        inserted = 0
        for level in sorted(levels):
            if level > inserted:
                sql = _history_rows_sql(inserted + 1, level, time.time(), postgres=cluster is not None)
                began = time.perf_counter()
                insert_history(deploy, cluster, sql)
                print(
                    f"{database}: {level - inserted} rows in {time.perf_counter() - began:.1f} s",
                    flush=True,
                )
                inserted = level
                totals = deploy.admins[0].get("/stats").json()["totals"]
                finished = sum(totals.get(state, 0) for state in ("completed", "dead", "cancelled"))
                assert finished >= level, f"{finished} finished jobs in the table, not {level}"
            latencies = pickup_latencies(deploy.admins[0], samples)
            rows.append({"database": database, "finished": level, "samples": samples, **_summary(latencies)})
            print(rows[-1], flush=True)
    return rows


# --- the report -------------------------------------------------------------------------------


def _table(headers: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + " --- |" * len(headers)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def report(pickup: list[dict[str, Any]], drain: list[dict[str, Any]], history: list[dict[str, Any]]) -> None:
    print("\n## Pickup (submit-to-start, idle queue)\n")
    print(
        _table(
            ["database", "case", "samples", "p50 (ms)", "p99 (ms)", "max (ms)"],
            [
                [
                    r["database"],
                    r["case"],
                    r["samples"],
                    *(f"{r[k]:.1f}" for k in ("p50_ms", "p99_ms", "max_ms")),
                ]
                for r in pickup
            ],
        )
    )
    print("\n## Drain (first start to last end)\n")
    print(
        _table(
            ["database", "replicas", "agents x 8", "jobs", "seconds", "jobs/s", "wall from first submit (s)"],
            [
                [
                    r["database"],
                    r["replicas"],
                    r["agents"],
                    r["jobs"],
                    f"{r['seconds']:.2f}",
                    f"{r['jobs_per_s']:.0f}",
                    f"{r['wall_s']:.2f}",
                ]
                for r in drain
            ],
        )
    )
    if history:
        print("\n## Pickup with finished jobs in the table\n")
        print(
            _table(
                ["database", "finished jobs", "samples", "p50 (ms)", "p99 (ms)"],
                [
                    [
                        r["database"],
                        f"{r['finished']:,}",
                        r["samples"],
                        f"{r['p50_ms']:.1f}",
                        f"{r['p99_ms']:.1f}",
                    ]
                    for r in history
                ],
            )
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=5000, help="jobs per drain case")
    parser.add_argument("--samples", type=int, default=200, help="pickup samples per case")
    parser.add_argument("--agents", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--replicas", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--history", type=int, nargs="+", default=[0, 100_000, 1_000_000])
    parser.add_argument("--skip-history", action="store_true")
    parser.add_argument("--skip-sqlite", action="store_true", help="no SQLite rows beside PostgreSQL")
    args = parser.parse_args()
    pickup: list[dict[str, Any]] = []
    drain: list[dict[str, Any]] = []
    history: list[dict[str, Any]] = []
    with throwaway_cluster() as cluster:
        targets: list[PostgresCluster | None] = [cluster] + ([] if args.skip_sqlite else [None])
        for target in targets:
            pickup += run_pickup(target, args.samples)
        for target in targets:
            replica_counts = args.replicas if target is not None else [1]
            drain += run_drain(target, args.jobs, args.agents, replica_counts)
        if not args.skip_history:
            for target in targets:
                history += run_history(target, args.history, args.samples)
    report(pickup, drain, history)


if __name__ == "__main__":
    main()
