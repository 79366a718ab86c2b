"""The same no-op work on RQ, on this machine, for comparison with ``noop_throughput.py``.

Needs ``redis-server`` on PATH and ``pip install rq`` (neither is a Taskpost dependency).
Starts a private redis-server on a free port, enqueues ``--jobs`` no-op jobs, then times
``--workers`` burst workers draining the queue. Enqueueing is left out of the time, which
favours RQ: the Taskpost figure includes submitting.

Usage: python bench/rq_noop.py [--jobs 5000] [--workers 1 2] [--worker-class rq.worker.SimpleWorker]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from taskpost.launch import free_port, wait_until


def noop(i: int) -> dict[str, int]:
    return {"i": i}


def run_case(jobs: int, workers: int, worker_class: str) -> float:
    from redis import Redis
    from rq import Queue

    port = free_port()
    with tempfile.TemporaryDirectory(prefix="rq-bench-") as tmp:
        server = subprocess.Popen(
            ["redis-server", "--port", str(port), "--save", "", "--appendonly", "no", "--dir", tmp],
            stdout=subprocess.DEVNULL,
        )
        try:
            redis = Redis(port=port)
            wait_until(lambda: _ping(redis), 10, "redis-server")
            queue = Queue("bench", connection=redis)
            with redis.pipeline() as pipe:
                for i in range(jobs):
                    queue.enqueue("bench.rq_noop.noop", i, pipeline=pipe)
                pipe.execute()
            started = time.perf_counter()
            command = [sys.executable, "-m", "rq.cli", "worker", "--burst", "--quiet", "--url"]
            command += [f"redis://127.0.0.1:{port}", "--worker-class", worker_class, "bench"]
            repo = str(Path(__file__).resolve().parent.parent)
            procs = [subprocess.Popen(command, cwd=repo) for _ in range(workers)]
            for proc in procs:
                proc.wait()
            elapsed = time.perf_counter() - started
            finished = queue.finished_job_registry.count
            if finished != jobs:
                raise RuntimeError(f"RQ finished {finished} of {jobs} jobs")
            return elapsed
        finally:
            server.terminate()
            server.wait()


def _ping(redis: object) -> bool:
    try:
        return bool(redis.ping())  # type: ignore[attr-defined]
    except Exception:
        return False


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=5000)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument(
        "--worker-class",
        nargs="+",
        default=["rq.worker.SimpleWorker", "rq.worker.Worker"],
        help="SimpleWorker runs jobs in the worker process; Worker forks one child per job",
    )
    args = parser.parse_args()
    if shutil.which("redis-server") is None:
        sys.exit("redis-server is not on PATH (Debian: apt-get install redis-server)")
    print("| RQ worker class | workers | jobs | seconds | jobs/s |")
    print("| --- | --- | --- | --- | --- |")
    for worker_class in args.worker_class:
        for workers in args.workers:
            elapsed = run_case(args.jobs, workers, worker_class)
            name = worker_class.rsplit(".", 1)[-1]
            print(
                f"| {name} | {workers} | {args.jobs} | {elapsed:.2f} | {args.jobs / elapsed:.0f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
