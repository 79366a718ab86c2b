"""RQ 3 with SimpleWorker (runs jobs in the worker process, no fork per job) on the private redis."""

from __future__ import annotations

import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from bench.harness import processes
from bench.harness.redis_server import RedisServer
from bench.harness.workloads import (
    BATCH_SIZE,
    ENQUEUE,
    RQ,
    BenchSettings,
    Sample,
    drain_sample,
    latency_samples,
)
from taskpost.launch import wait_until

JOB_FUNCTION = "bench.harness.rq_tasks.noop"
WORKER_CLASS = "rq.worker.SimpleWorker"


def _timestamp(value: datetime) -> float:
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()


def _worker_command(redis: RedisServer, queue: str, *, burst: bool) -> list[str]:
    command = [sys.executable, "-m", "rq.cli", "worker", "--quiet", "--url", redis.url]
    command += ["--worker-class", WORKER_CLASS, *(["--burst"] if burst else []), queue]
    return command


def fill(redis: RedisServer, queue_name: str, jobs: int) -> tuple[list[str], float]:
    """``Queue.enqueue_many`` of ``prepare_data`` items, 500 to a pipeline; ids and seconds."""
    from rq import Queue

    queue = Queue(queue_name, connection=redis.client())
    ids: list[str] = []
    queue.connection.ping()
    started = time.perf_counter()
    for first in range(0, jobs, BATCH_SIZE):
        items = [
            Queue.prepare_data(JOB_FUNCTION, args=(i,)) for i in range(first, min(jobs, first + BATCH_SIZE))
        ]
        with queue.connection.pipeline() as pipe:
            enqueued = queue.enqueue_many(items, pipeline=pipe)
            pipe.execute()
        ids += [job.id for job in enqueued]
    return ids, time.perf_counter() - started


def drain(
    redis: RedisServer, queue_name: str, ids: list[str], workers: int, logs: Path
) -> tuple[float, float]:
    """Burst workers started on the filled queue; the first ``started_at`` and the last
    ``ended_at`` as RQ stored them."""
    from rq.job import Job, JobStatus

    started = [
        processes.spawn(_worker_command(redis, queue_name, burst=True), logs / f"rq-{queue_name}-{index}.log")
        for index in range(workers)
    ]
    for process in started:
        process.wait()
    jobs = Job.fetch_many(ids, connection=redis.client())
    finished = [job for job in jobs if job is not None and job.get_status() == JobStatus.FINISHED]
    if len(finished) != len(ids):
        raise RuntimeError(f"RQ finished {len(finished)} of {len(ids)} jobs")
    first = min(_timestamp(job.started_at) for job in finished if job.started_at)
    last = max(_timestamp(job.ended_at) for job in finished if job.ended_at)
    return first, last


def latencies(redis: RedisServer, samples: int, logs: Path) -> list[float]:
    """``started_at - enqueued_at`` of jobs enqueued one at a time to one idle SimpleWorker."""
    from rq import Queue
    from rq.job import Job, JobStatus

    queue = Queue("latency", connection=redis.client())
    worker = processes.spawn(_worker_command(redis, "latency", burst=False), logs / "rq-latency.log")
    try:
        values = []
        for index in range(samples + 1):
            job = queue.enqueue(JOB_FUNCTION, index)

            def finished(job: Job = job) -> bool:
                return job.get_status(refresh=True) == JobStatus.FINISHED

            wait_until(finished, 60, "an RQ latency job", interval_s=0.002)
            job.refresh()  # type: ignore[no-untyped-call]
            if index and job.started_at and job.enqueued_at:
                values.append(_timestamp(job.started_at) - _timestamp(job.enqueued_at))
        return values
    finally:
        processes.stop(worker)


def run_once(redis: RedisServer, settings: BenchSettings, run: int) -> list[Sample]:
    samples: list[Sample] = []
    redis.flush()
    with tempfile.TemporaryDirectory(prefix="harness-rq-") as folder:
        logs = Path(folder)
        for index, workers in enumerate(settings.worker_counts):
            queue_name = f"drain-{workers}"
            ids, seconds = fill(redis, queue_name, settings.jobs)
            if index == 0:
                samples.append(Sample(RQ, ENQUEUE, run, settings.jobs / seconds, "jobs/s"))
            first, last = drain(redis, queue_name, ids, workers, logs)
            samples.append(drain_sample(RQ, run, workers, len(ids), first, last))
        samples += latency_samples(RQ, run, latencies(redis, settings.latency_samples, logs))
    return samples
