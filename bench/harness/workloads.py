"""What the harness measures and what one measurement looks like."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

ENQUEUE = "enqueue"
DRAIN = "drain"
LATENCY_P50 = "latency p50"
LATENCY_P90 = "latency p90"
LATENCY_P99 = "latency p99"

TASKPOST_SQLITE = "Taskpost SQLite"
TASKPOST_PG = "Taskpost PostgreSQL"
RQ = "RQ SimpleWorker"
CELERY = "Celery"
"""Enqueue rows only: both Celery pools publish the same way."""
CELERY_SOLO = "Celery solo"
CELERY_PREFORK = "Celery prefork"

BATCH_SIZE = 500
TABLE_WORKERS = 2
"""The worker (agent) count whose drain rows the ratios compare."""


@dataclass(frozen=True)
class BenchSettings:
    jobs: int
    runs: int
    latency_samples: int
    worker_counts: tuple[int, ...]
    agent_concurrency: int = 8


@dataclass(frozen=True)
class Sample:
    """One measured value of one run: e.g. the drain rate of RQ with 2 workers in run 1."""

    system: str
    measure: str
    run: int
    value: float
    unit: str
    workers: int = 0
    """Agents or worker processes that did the work; 0 where none took part (enqueue)."""
    detail: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def latency_samples(system: str, run: int, latencies_s: list[float]) -> list[Sample]:
    """p50, p90 and p99 (ms) of one run's submit-to-start latencies."""
    from bench.harness.stats import percentile

    milliseconds = [value * 1000 for value in latencies_s]
    detail = {"count": len(milliseconds), "max_ms": max(milliseconds)}
    return [
        Sample(system, measure, run, percentile(milliseconds, fraction), "ms", 1, detail)
        for measure, fraction in ((LATENCY_P50, 0.50), (LATENCY_P90, 0.90), (LATENCY_P99, 0.99))
    ]


def drain_sample(
    system: str, run: int, workers: int, jobs: int, first_start: float, last_end: float
) -> Sample:
    span = max(last_end - first_start, 1e-9)
    detail = {"jobs": jobs, "seconds": span}
    return Sample(system, DRAIN, run, jobs / span, "jobs/s", workers, detail)
