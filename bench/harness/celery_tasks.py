"""The Celery app and no-op task the benchmark workers load (``-A bench.harness.celery_tasks``).

Timing costs the task nothing measurable: each worker process keeps its first start and last end
(``time.time()`` from the ``task_prerun``/``task_postrun`` signals) and a count in memory, and
writes them to a file in ``BENCH_CELERY_TIMES_DIR`` when it shuts down. Only for the latency
workload (``BENCH_CELERY_REPORT_STARTS=1``, one task at a time) does it push each start time to
Redis, where the client waits for it.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from celery import Celery
from celery.signals import task_postrun, task_prerun, worker_process_shutdown, worker_shutdown

BROKER_ENV = "BENCH_CELERY_BROKER"
TIMES_DIR_ENV = "BENCH_CELERY_TIMES_DIR"
REPORT_STARTS_ENV = "BENCH_CELERY_REPORT_STARTS"
QUEUE = "bench"
STARTED_KEY = "bench:started:{}"
ENDED_KEY = "bench:ended:{}"

app = Celery("bench", broker=os.environ.get(BROKER_ENV, "redis://127.0.0.1:6379/0"))
app.conf.update(
    task_ignore_result=True,
    task_default_queue=QUEUE,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)


@app.task(name="bench.noop")
def noop(i: int) -> dict[str, int]:
    return {"i": i}


class _ProcessTimes:
    def __init__(self) -> None:
        self.first_start: float | None = None
        self.last_end = 0.0
        self.count = 0
        self.report: Any = None

    def reporter(self) -> Any:
        if self.report is None:
            from redis import Redis

            self.report = Redis.from_url(app.conf.broker_url)
        return self.report


_times = _ProcessTimes()
_REPORT_STARTS = os.environ.get(REPORT_STARTS_ENV) == "1"


@task_prerun.connect
def _on_start(task_id: str | None = None, **_: Any) -> None:
    now = time.time()
    if _times.first_start is None:
        _times.first_start = now
    if _REPORT_STARTS:
        _times.reporter().rpush(STARTED_KEY.format(task_id), repr(now))


@task_postrun.connect
def _on_end(task_id: str | None = None, **_: Any) -> None:
    _times.last_end = time.time()
    _times.count += 1
    if _REPORT_STARTS:
        _times.reporter().rpush(ENDED_KEY.format(task_id), repr(_times.last_end))


def _write_times(**_: Any) -> None:
    folder = os.environ.get(TIMES_DIR_ENV)
    if not folder or not _times.count:
        return
    record = {"first_start": _times.first_start, "last_end": _times.last_end, "count": _times.count}
    Path(folder, f"{os.getpid()}.json").write_text(json.dumps(record))


worker_shutdown.connect(_write_times)
worker_process_shutdown.connect(_write_times)
