"""The coordinator's cost per job on the hot path, in one process: claims that carry completions.

A coordinator app on a fresh SQLite file (or ``--database-url``) is driven through httpx's ASGI
transport, so no network and no agent process is measured: an agent's loop is played by
requests of ``--batch`` claims, each carrying the completions of the batch before. Prints the
jobs per second, the time per round trip and the SQL statements each round trip runs, with
their time; ``--profile FILE`` writes cProfile stats of the rounds alone.

Run from the repository root (``tests`` is not an installed package):
``python -m bench.claim_complete [--jobs 2000] [--batch 8] [--runs 3]``
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import cProfile
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import event

from taskpost.protocol import API_PREFIX
from tests.server.conftest import ManualClock, make_settings, running_api


class StatementLog:
    """SQL statements by their first words, counted and timed."""

    def __init__(self) -> None:
        self.count: collections.Counter[str] = collections.Counter()
        self.seconds: collections.Counter[str] = collections.Counter()

    def attach(self, engine: Any) -> None:
        @event.listens_for(engine, "before_cursor_execute")
        def before(conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
            conn.info["bench_started"] = time.perf_counter()

        @event.listens_for(engine, "after_cursor_execute")
        def after(conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
            words = statement.split()
            name = " ".join(words[:4])
            self.count[name] += 1
            self.seconds[name] += time.perf_counter() - conn.info.pop("bench_started", time.perf_counter())


async def one_run(jobs: int, batch: int, database_url: str | None, profile: Path | None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="taskpost-bench-") as tmp:
        settings = make_settings(Path(tmp) / "data", database_url)
        clock = ManualClock()
        async with running_api(settings, clock) as api:
            worker_id = await api.register()
            for first in range(0, jobs, 500):
                specs = [{"type": "noop", "params": {"i": i}} for i in range(first, min(jobs, first + 500))]
                response = await api.http.post(
                    f"{API_PREFIX}/jobs/batch", json={"jobs": specs}, headers=api.auth("client")
                )
                response.raise_for_status()
            log = StatementLog()
            log.attach(api.coord.db.engine.sync_engine)
            profiler = cProfile.Profile() if profile else None
            if profiler:
                profiler.enable()
            done = rounds = 0
            carried: list[dict[str, Any]] = []
            started = time.perf_counter()
            while done < jobs:
                response = await api.http.post(
                    f"{API_PREFIX}/workers/{worker_id}/claim",
                    json={"max_tasks": batch, "wait_s": 0, "completions": carried},
                    headers=api.auth("worker"),
                )
                response.raise_for_status()
                body = response.json()
                rounds += 1
                done += len(body["acks"])
                carried = [
                    {
                        "job_id": task["job_id"],
                        "lease_token": task["lease_token"],
                        "outcome": "succeeded",
                        "result": {"params": task["params"]},
                    }
                    for task in body["tasks"]
                ]
                if not carried and not body["tasks"] and done < jobs:
                    raise RuntimeError(f"the queue ran dry after {done} of {jobs} jobs")
            seconds = time.perf_counter() - started
            if profiler and profile:
                profiler.disable()
                profiler.dump_stats(profile)
    return {
        "jobs_per_s": jobs / seconds,
        "ms_per_round": seconds / rounds * 1000,
        "rounds": rounds,
        "log": log,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument(
        "--batch", type=int, default=8, help="tasks per claim, as an agent's --max-concurrent"
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--database-url", default=None, help="default: a SQLite file in a temporary folder")
    parser.add_argument("--profile", type=Path, default=None, help="cProfile stats of the last run's rounds")
    args = parser.parse_args()
    results = []
    for index in range(args.runs):
        profile = args.profile if index == args.runs - 1 else None
        results.append(asyncio.run(one_run(args.jobs, args.batch, args.database_url, profile)))
    rates = [r["jobs_per_s"] for r in results]
    print("| jobs | batch | runs | jobs/s median | min-max | ms per round trip (median) |")
    print("| --- | --- | --- | --- | --- | --- |")
    rounds_ms = statistics.median(r["ms_per_round"] for r in results)
    print(
        f"| {args.jobs} | {args.batch} | {args.runs} | {statistics.median(rates):.0f} "
        f"| {min(rates):.0f}-{max(rates):.0f} | {rounds_ms:.2f} |"
    )
    last = results[-1]
    log: StatementLog = last["log"]
    print("\n| SQL statement (first words) | per round trip | ms per round trip |")
    print("| --- | --- | --- |")
    for name, count in log.count.most_common():
        per_round = count / last["rounds"]
        if per_round >= 0.05:
            print(f"| `{name}` | {per_round:.2f} | {log.seconds[name] / last['rounds'] * 1000:.2f} |")


if __name__ == "__main__":
    main()
