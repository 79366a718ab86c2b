"""Run every available system, run after run, and gather the samples.

Each run goes through the systems in turn (Taskpost SQLite, Taskpost PostgreSQL, RQ, Celery), so
a machine that slows down part-way hurts all of them, and ratios are paired by run.
"""

from __future__ import annotations

import sys
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any

from bench.harness import processes
from bench.harness.checks import Availability
from bench.harness.workloads import (
    CELERY_PREFORK,
    CELERY_SOLO,
    RQ,
    TASKPOST_PG,
    TASKPOST_SQLITE,
    BenchSettings,
    Sample,
)


@dataclass
class Outcome:
    samples: list[Sample] = field(default_factory=list)
    systems: list[str] = field(default_factory=list)
    """The systems that ran (a PostgreSQL cluster that does not start drops Taskpost PostgreSQL)."""
    notes: list[str] = field(default_factory=list)


def progress(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def run_all(settings: BenchSettings, available: Availability, require_all: bool) -> Outcome:
    from bench.harness import taskpost_runner

    outcome = Outcome(systems=list(available.systems))
    wanted = set(available.systems)
    with ExitStack() as stack:
        cluster: Any = None
        if TASKPOST_PG in wanted:
            from bench.pg_cluster import throwaway_cluster

            progress("starting a throwaway PostgreSQL cluster")
            try:
                cluster = stack.enter_context(throwaway_cluster())
            except Exception as error:
                if require_all:
                    raise
                outcome.notes.append(f"PostgreSQL did not start ({error}): Taskpost on PostgreSQL skipped")
                outcome.systems.remove(TASKPOST_PG)
        redis = None
        if wanted & {RQ, CELERY_SOLO, CELERY_PREFORK}:
            from bench.harness.redis_server import private_redis

            redis = stack.enter_context(private_redis())
            processes.remember(redis.pid)
            progress(f"private redis-server on 127.0.0.1:{redis.port}")
        for run in range(settings.runs):
            if TASKPOST_SQLITE in wanted:
                progress(f"run {run + 1}/{settings.runs}: {TASKPOST_SQLITE}")
                outcome.samples += taskpost_runner.run_once(TASKPOST_SQLITE, settings, run, None)
            if cluster is not None:
                progress(f"run {run + 1}/{settings.runs}: {TASKPOST_PG}")
                url = cluster.create_database()
                try:
                    outcome.samples += taskpost_runner.run_once(TASKPOST_PG, settings, run, url)
                finally:
                    cluster.drop_database(url)
            if redis is not None and RQ in wanted:
                from bench.harness import rq_runner

                progress(f"run {run + 1}/{settings.runs}: {RQ}")
                outcome.samples += rq_runner.run_once(redis, settings, run)
            if redis is not None and CELERY_SOLO in wanted:
                from bench.harness import celery_runner

                progress(f"run {run + 1}/{settings.runs}: Celery solo and prefork")
                outcome.samples += celery_runner.run_once(redis, settings, run, ("solo", "prefork"))
    return outcome
