"""No-op jobs per second and submit-to-start latency, with 1 and 2 agents.

Starts a fresh coordinator (SQLite, default settings) and N agents as child processes through
the CLI, on this machine, then:

1. latency: submits one job at a time to idle agents and takes ``started_at - created_at``
   (both stamped by the coordinator) for each: the pickup latency of the long poll;
2. throughput: submits ``--jobs`` no-op jobs in batches and times from the first submit to the
   last completion.

Usage: python bench/noop_throughput.py [--jobs 5000] [--agents 1 2] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import signal
import statistics
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from taskpost.launch import ChildProcess, LocalCoordinator, wait_until
from taskpost.protocol import API_PREFIX


def _seconds(stamp: str) -> float:
    return datetime.fromisoformat(stamp).timestamp()


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def run_case(agents: int, jobs: int, concurrency: int, latency_samples: int, work: Path) -> dict[str, Any]:
    coordinator = LocalCoordinator(work).start()
    children: list[ChildProcess] = []
    auth = {"Authorization": f"Bearer {coordinator.admin_key}"}
    http = httpx.Client(base_url=coordinator.url + API_PREFIX, headers=auth, timeout=60)
    try:
        key = http.post("/keys", json={"role": "worker"}).json()["key"]
        for index in range(agents):
            args = ["--max-concurrent", str(concurrency), "--health-port", "0", "--log-level", "warning"]
            args += ["--name", f"bench-{index}"]
            children.append(coordinator.start_agent(key, *args, log_name=f"agent-{index}.log"))
        wait_until(lambda: len(http.get("/workers").json()) == agents, 60, "agents to register")

        latencies = []
        for _ in range(latency_samples):
            job = http.post("/jobs", json={"type": "noop"}).json()["job"]
            done = wait_until(
                lambda j=job: (x := http.get(f"/jobs/{j['id']}").json())["state"] == "completed" and x, 30
            )
            latencies.append(_seconds(done["started_at"]) - _seconds(done["created_at"]))

        already = latency_samples
        started = time.perf_counter()
        for first in range(0, jobs, 500):
            batch = [{"type": "noop", "params": {"i": i}} for i in range(first, min(jobs, first + 500))]
            response = http.post("/jobs/batch", json={"jobs": batch})
            response.raise_for_status()
        target = already + jobs
        wait_until(lambda: http.get("/stats").json()["totals"].get("completed", 0) >= target, 600, "the jobs")
        elapsed = time.perf_counter() - started
    finally:
        for child in children:
            child.stop(signal.SIGTERM)
        coordinator.stop()
        http.close()
    return {
        "agents": agents,
        "concurrency": concurrency,
        "jobs": jobs,
        "seconds": elapsed,
        "jobs_per_s": jobs / elapsed,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": _percentile(latencies, 0.99) * 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=5000)
    parser.add_argument("--agents", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--concurrency", type=int, default=16, help="--max-concurrent of each agent")
    parser.add_argument("--latency-samples", type=int, default=200)
    args = parser.parse_args()
    rows = []
    for agents in args.agents:
        with tempfile.TemporaryDirectory(prefix="taskpost-bench-") as tmp:
            rows.append(run_case(agents, args.jobs, args.concurrency, args.latency_samples, Path(tmp)))
    print("| agents | max-concurrent | jobs | seconds | jobs/s | submit-to-start p50 (ms) | p99 (ms) |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        cells = [r["agents"], r["concurrency"], r["jobs"], f"{r['seconds']:.2f}", f"{r['jobs_per_s']:.0f}"]
        cells += [f"{r['p50_ms']:.1f}", f"{r['p99_ms']:.1f}"]
        print("| " + " | ".join(str(c) for c in cells) + " |")


if __name__ == "__main__":
    main()
