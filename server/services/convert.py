"""Rows to wire models."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from taskpost.protocol import FileInfo, JobError, JobPublic, JobState, Priority, WorkerType


def to_datetime(timestamp: float | None) -> datetime | None:
    return None if timestamp is None else datetime.fromtimestamp(timestamp, UTC)


def require_datetime(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, UTC)


def file_infos(files: Any) -> list[FileInfo]:
    return [FileInfo(name=f["name"], size=f["size"], sha256=f["sha256"]) for f in files or []]


def job_public(row: Any) -> JobPublic:
    """A ``jobs`` row (any mapping-like row with the table's columns) as clients see it."""
    error = row.error
    return JobPublic(
        id=row.id,
        namespace=row.namespace,
        type=row.type,
        state=JobState(row.state),
        priority=Priority.from_rank(row.priority),
        params=row.params,
        meta=row.meta,
        created_at=require_datetime(row.created_at),
        started_at=to_datetime(row.started_at),
        ended_at=to_datetime(row.ended_at),
        available_at=to_datetime(row.available_at),
        attempts=row.attempts,
        max_attempts=row.max_attempts,
        timeout_s=row.timeout_s,
        total_timeout_s=row.total_timeout_s,
        worker_type=WorkerType(row.worker_type) if row.worker_type else None,
        labels=json.loads(row.labels),
        idempotency_key=row.idempotency_key,
        worker_id=row.worker_id,
        cancel_requested=bool(row.cancel_requested),
        progress=row.progress,
        progress_message=row.progress_message,
        result=row.result,
        error=JobError(**error) if error else None,
        inputs=file_infos(row.inputs),
        outputs=file_infos(row.outputs),
        parent_id=row.parent_id,
        children=row.children or [],
        # Shown until the job completes: then they are jobs (children), or dropped.
        then=row.then_steps or [] if row.state != JobState.COMPLETED.value else [],
    )
