"""Fill a coordinator's tables with finished jobs, fast, with direct SQL (the coordinator stopped).

The rows look like the ones the coordinator writes for no-op jobs (server/services/claims.py,
leases.py, jobs.py): 80% completed, 10% dead after one non-retryable failure, 10% cancelled while
queued, each with the ``job_events`` rows of its life (``state`` changes, the failure, the cancel
request). Their times lie in the past, spread over the ``span_s`` before ``now``.

SQLite gets one ``executemany`` transaction; PostgreSQL gets asyncpg's binary COPY.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]

JOB_COLUMNS = (
    "id", "namespace", "type", "state", "priority", "params", "meta", "result", "error", "progress",
    "attempts", "max_attempts", "timeout_s", "retry", "labels", "inputs", "outputs", "created_at",
    "started_at", "attempt_started_at", "ended_at", "lease_token", "last_lease_token", "worker_id",
    "cancel_requested", "webhook_attempts",
)  # fmt: skip
EVENT_COLUMNS = ("job_id", "at", "kind", "attempt", "worker_id", "detail", "data")
CHUNK = 20_000
RETRY = json.dumps({"base_s": 1.0, "factor": 2.0, "cap_s": 300.0, "jitter": True})
FAILURE = json.dumps({"message": "boom", "kind": "noop_failure", "traceback": None, "retryable": False})
FAILING_PARAMS = json.dumps({"fail": "boom", "fail_retryable": False})


@dataclass(frozen=True)
class History:
    """``count`` finished jobs ending before ``now``, spread over ``span_s``, run by ``workers`` agents."""

    count: int
    now: float
    span_s: float = 7 * 86400
    workers: int = 8

    def rows(self) -> Iterator[tuple[tuple[Any, ...], list[tuple[Any, ...]]]]:
        """Each job's row (``JOB_COLUMNS``) with its event rows (``EVENT_COLUMNS``)."""
        worker_ids = [str(uuid.uuid4()) for _ in range(self.workers)]
        step = self.span_s / max(self.count, 1)
        for number in range(self.count):
            created = self.now - self.span_s + number * step
            worker = worker_ids[number % self.workers]
            kind = number % 10
            if kind == 0:
                yield _dead(str(uuid.uuid4()), created, worker)
            elif kind == 1:
                yield _cancelled(str(uuid.uuid4()), created)
            else:
                yield _completed(str(uuid.uuid4()), created, worker)


def _job(job_id: str, state: str, created: float, **values: Any) -> tuple[Any, ...]:
    row: dict[str, Any] = dict.fromkeys(JOB_COLUMNS)
    row.update(
        id=job_id, namespace="default", type="noop", state=state, priority=1, params="{}", meta="{}",
        attempts=1, max_attempts=3, timeout_s=3600.0, retry=RETRY, labels="[]", inputs="[]",
        outputs="[]", created_at=created, cancel_requested=False, webhook_attempts=0,
    )  # fmt: skip
    row.update(values)
    return tuple(row[column] for column in JOB_COLUMNS)


def _state(job_id: str, at: float, attempt: int, worker: str | None, data: dict[str, Any]) -> tuple[Any, ...]:
    return (job_id, at, "state", attempt, worker, None, json.dumps(data))


def _completed(job_id: str, created: float, worker: str) -> tuple[tuple[Any, ...], list[tuple[Any, ...]]]:
    started, ended = created + 0.002, created + 0.006
    row = _job(
        job_id, "completed", created, result='{"params": {}, "attempt": 1}', error="null", progress=1.0,
        started_at=started, attempt_started_at=started, ended_at=ended,
        lease_token=uuid.uuid4().hex, worker_id=worker,
    )  # fmt: skip
    events = [
        _state(job_id, created, 0, None, {"state": "queued"}),
        _state(job_id, started, 1, worker, {"state": "processing", "waited_s": 0.002}),
        _state(job_id, ended, 1, worker, {"state": "completed", "run_s": 0.004}),
    ]
    return row, events


def _dead(job_id: str, created: float, worker: str) -> tuple[tuple[Any, ...], list[tuple[Any, ...]]]:
    started, ended = created + 0.002, created + 0.005
    row = _job(
        job_id, "dead", created, params=FAILING_PARAMS, error=FAILURE, started_at=started,
        attempt_started_at=started, ended_at=ended, last_lease_token=uuid.uuid4().hex, worker_id=worker,
    )  # fmt: skip
    events = [
        _state(job_id, created, 0, None, {"state": "queued"}),
        _state(job_id, started, 1, worker, {"state": "processing", "waited_s": 0.002}),
        (job_id, ended, "attempt_failed", 1, worker, "boom", "null"),
        _state(job_id, ended, 1, worker, {"state": "dead"}),
    ]
    return row, events


def _cancelled(job_id: str, created: float) -> tuple[tuple[Any, ...], list[tuple[Any, ...]]]:
    ended = created + 1.0
    row = _job(job_id, "cancelled", created, attempts=0, ended_at=ended, cancel_requested=True)
    events = [
        _state(job_id, created, 0, None, {"state": "queued"}),
        (job_id, ended, "cancel_requested", 0, None, None, "null"),
        _state(job_id, ended, 0, None, {"state": "cancelled"}),
    ]
    return row, events


def _chunks(history: History) -> Iterator[tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]]:
    rows = history.rows()
    while chunk := list(islice(rows, CHUNK)):
        yield [job for job, _ in chunk], [event for _, events in chunk for event in events]


def fill_sqlite(database: Path, history: History, *, analyze: bool) -> int:
    """Insert ``history`` into the SQLite file in one transaction; returns the event rows written."""
    jobs_sql = f"INSERT INTO jobs ({', '.join(JOB_COLUMNS)}) VALUES ({', '.join('?' * len(JOB_COLUMNS))})"
    events_sql = (
        f"INSERT INTO job_events ({', '.join(EVENT_COLUMNS)}) VALUES ({', '.join('?' * len(EVENT_COLUMNS))})"
    )
    written = 0
    db = sqlite3.connect(database, isolation_level=None)
    try:
        db.execute("BEGIN IMMEDIATE")
        for jobs, events in _chunks(history):
            db.executemany(jobs_sql, jobs)
            db.executemany(events_sql, events)
            written += len(events)
        db.execute("COMMIT")
        if analyze:
            db.execute("ANALYZE")
    finally:
        db.close()
    return written


async def fill_postgres(url: str, history: History, *, analyze: bool) -> int:
    """COPY ``history`` into the PostgreSQL database in one transaction; returns the event rows."""
    written = 0
    conn = await asyncpg.connect(url)
    try:
        async with conn.transaction():
            for jobs, events in _chunks(history):
                await conn.copy_records_to_table("jobs", records=jobs, columns=JOB_COLUMNS)
                await conn.copy_records_to_table("job_events", records=events, columns=EVENT_COLUMNS)
                written += len(events)
        if analyze:
            # What autovacuum does after this many inserts: statistics and the visibility map.
            await conn.execute("VACUUM (ANALYZE) jobs")
            await conn.execute("VACUUM (ANALYZE) job_events")
    finally:
        await conn.close()
    return written
