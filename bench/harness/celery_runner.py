"""Celery 5 on the private redis: solo pool with N worker processes, and prefork ``-c N`` in one.

Enqueue uses ``apply_async`` in a loop over one shared producer (one connection): Celery has no
batch publish, and ``group(...).apply_async()`` publishes the same messages one by one with the
group bookkeeping on top. Results are ignored (``task_ignore_result``), as RQ's and Taskpost's
no-op results cost them a write each, which favours Celery slightly.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.harness import processes
from bench.harness.redis_server import RedisServer
from bench.harness.workloads import (
    CELERY,
    CELERY_PREFORK,
    CELERY_SOLO,
    ENQUEUE,
    BenchSettings,
    Sample,
    drain_sample,
    latency_samples,
)
from taskpost.launch import wait_until

DRAIN_TIMEOUT_S = 600
UNACKED_KEY = "unacked"
"""Kombu's Redis transport keeps each delivered, not yet acknowledged message in this hash."""


def _app(redis: RedisServer) -> Any:
    from bench.harness import celery_tasks

    celery_tasks.app.conf.broker_url = redis.url
    return celery_tasks


def _worker_env(redis: RedisServer, times_dir: Path, report_starts: bool) -> dict[str, str]:
    from bench.harness import celery_tasks as tasks

    env = dict(os.environ)
    env.update({tasks.BROKER_ENV: redis.url, tasks.TIMES_DIR_ENV: str(times_dir)})
    env[tasks.REPORT_STARTS_ENV] = "1" if report_starts else "0"
    return env


def _worker_command(pool: str, concurrency: int, name: str) -> list[str]:
    command = [sys.executable, "-m", "celery", "-A", "bench.harness.celery_tasks", "worker"]
    command += ["--pool", pool, "--concurrency", str(concurrency), "--queues", "bench"]
    command += ["--without-gossip", "--without-mingle", "--without-heartbeat", "--loglevel", "warning"]
    return [*command, "--hostname", f"{name}@%h"]


def fill(redis: RedisServer, jobs: int) -> float:
    """Seconds to publish ``jobs`` tasks, the connection made before the clock starts (as
    Taskpost's HTTP client and RQ's connection are)."""
    tasks = _app(redis)
    with tasks.app.producer_or_acquire() as producer:
        producer.connection.ensure_connection()
        started = time.perf_counter()
        for i in range(jobs):
            tasks.noop.apply_async((i,), producer=producer)
        return time.perf_counter() - started


def _queue_settled(redis: RedisServer) -> bool:
    with redis.client() as client:
        waiting = sum(client.llen(key) for key in client.scan_iter(match="bench*", _type="list"))
        return bool(waiting == 0 and client.hlen(UNACKED_KEY) == 0)


def drain(redis: RedisServer, pool: str, workers: int, jobs: int, logs: Path) -> tuple[float, float]:
    """Start the workers on the filled queue; once nothing is queued or unacknowledged, a warm
    shutdown lets the last tasks finish and each process writes its first start and last end."""
    with tempfile.TemporaryDirectory(prefix="harness-celery-times-") as folder:
        times_dir = Path(folder)
        env = _worker_env(redis, times_dir, report_starts=False)
        if pool == "solo":
            commands = [_worker_command("solo", 1, f"solo{index}") for index in range(workers)]
        else:
            commands = [_worker_command("prefork", workers, "prefork")]
        started = [
            processes.spawn(command, logs / f"celery-{pool}-{workers}-{index}.log", env)
            for index, command in enumerate(commands)
        ]
        try:
            # Settled twice in a row: a message popped from the list is in the unacked hash only
            # a moment later.
            wait_until(lambda: _queue_settled(redis), DRAIN_TIMEOUT_S, "Celery to drain", interval_s=0.05)
            wait_until(lambda: _queue_settled(redis), DRAIN_TIMEOUT_S, "Celery to drain", interval_s=0.05)
        finally:
            for process in started:
                processes.stop(process)
        records = [json.loads(path.read_text()) for path in times_dir.glob("*.json")]
    done = sum(record["count"] for record in records)
    if done != jobs:
        raise RuntimeError(f"Celery {pool} ran {done} of {jobs} tasks")
    return min(r["first_start"] for r in records), max(r["last_end"] for r in records)


def latencies(redis: RedisServer, samples: int, logs: Path) -> list[float]:
    """Start time recorded by one idle solo worker minus the client's ``time.time()`` just
    before ``apply_async`` (same machine, same clock)."""
    tasks = _app(redis)
    with tempfile.TemporaryDirectory(prefix="harness-celery-times-") as folder:
        env = _worker_env(redis, Path(folder), report_starts=True)
        worker = processes.spawn(_worker_command("solo", 1, "latency"), logs / "celery-latency.log", env)
        try:
            values = []
            with redis.client() as client, tasks.app.producer_or_acquire() as producer:
                for index in range(samples + 1):
                    sent = time.time()
                    result = tasks.noop.apply_async((index,), producer=producer)
                    started = client.blpop([tasks.STARTED_KEY.format(result.id)], timeout=60)
                    ended = client.blpop([tasks.ENDED_KEY.format(result.id)], timeout=60)
                    if started is None or ended is None:
                        raise TimeoutError("a Celery latency task did not run")
                    if index:
                        values.append(float(started[1]) - sent)
            return values
        finally:
            processes.stop(worker)


def run_once(redis: RedisServer, settings: BenchSettings, run: int, pools: tuple[str, ...]) -> list[Sample]:
    samples: list[Sample] = []
    redis.flush()
    with tempfile.TemporaryDirectory(prefix="harness-celery-") as folder:
        logs = Path(folder)
        first_fill = True
        for pool in pools:
            system = CELERY_SOLO if pool == "solo" else CELERY_PREFORK
            for workers in settings.worker_counts:
                seconds = fill(redis, settings.jobs)
                if first_fill:
                    samples.append(Sample(CELERY, ENQUEUE, run, settings.jobs / seconds, "jobs/s"))
                    first_fill = False
                first, last = drain(redis, pool, workers, settings.jobs, logs)
                samples.append(drain_sample(system, run, workers, settings.jobs, first, last))
        if "solo" in pools:
            samples += latency_samples(CELERY_SOLO, run, latencies(redis, settings.latency_samples, logs))
    return samples
