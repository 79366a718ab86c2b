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
import secrets
import signal
import statistics
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from protocol import API_PREFIX
from taskpost.launch import ChildProcess, child_env, free_port, wait_healthy, wait_until


def _seconds(stamp: str) -> float:
    return datetime.fromisoformat(stamp).timestamp()


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def run_case(agents: int, jobs: int, concurrency: int, latency_samples: int, work: Path) -> dict[str, Any]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    admin = secrets.token_urlsafe(16)
    env = child_env({"TASKPOST_ADMIN_KEY": admin, "TASKPOST_DATA_DIR": str(work / "data")})
    coordinator = ChildProcess(
        ["server", "--port", str(port), "--log-level", "warning"], env, work / "coordinator.log"
    )
    coordinator.start()
    children: list[ChildProcess] = []
    http = httpx.Client(base_url=url + API_PREFIX, headers={"Authorization": f"Bearer {admin}"}, timeout=60)
    try:
        wait_healthy(url, coordinator)
        key = http.post("/keys", json={"role": "worker"}).json()["key"]
        for index in range(agents):
            args = ["agent", "--server-url", url, "--api-key", key, "--max-concurrent", str(concurrency)]
            args += ["--health-port", "0", "--log-level", "warning", "--name", f"bench-{index}"]
            children.append(ChildProcess(args, env, work / f"agent-{index}.log").start())
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
        coordinator.stop(signal.SIGTERM)
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
