"""Where a job goes after an attempt that did not succeed. One place for every path that ends
an attempt early: a handler failure, a lost lease, a timeout, a release."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from taskpost.protocol import JobState
from taskpost.server.services.backoff import retry_delay_s
from taskpost.server.services.jobs import JOBS

# What after_failure reads of a job, plus who held it.
ATTEMPT_COLUMNS = (
    JOBS.c.id,
    JOBS.c.lease_token,
    JOBS.c.worker_id,
    JOBS.c.attempts,
    JOBS.c.max_attempts,
    JOBS.c.retry,
    JOBS.c.created_at,
    JOBS.c.total_timeout_s,
    JOBS.c.cancel_requested,
)


ATTEMPT_OVER: dict[str, Any] = {"lease_token": None, "lease_expires_at": None, "progress_message": None}
"""What every end of an attempt clears: its lease, and its last progress message."""
WAITING_AGAIN: dict[str, Any] = {"worker_id": None, "progress": None}
"""For a job back in the queue (or waiting for a retry): no agent, no progress of an old attempt."""


@dataclass(frozen=True)
class AttemptFailure:
    message: str
    kind: str
    retryable: bool = True
    retry_delay_s: float | None = None
    traceback: str | None = None


def after_failure(job: Any, failure: AttemptFailure, now: float) -> dict[str, Any]:
    """Column values for a job whose current attempt failed.

    ``job`` is a row with attempts, max_attempts, retry, created_at, total_timeout_s and
    cancel_requested. The lease token is cleared so a late completion of this attempt is stale,
    and the attempt's progress message with it.
    """
    values: dict[str, Any] = {
        **ATTEMPT_OVER,
        "error": {
            "message": failure.message,
            "kind": failure.kind,
            "traceback": failure.traceback,
            "retryable": failure.retryable,
        },
    }
    if job.cancel_requested:
        values.update(state=JobState.CANCELLED.value, ended_at=now)
        return values
    policy = job.retry if isinstance(job.retry, dict) else json.loads(job.retry)
    delay = failure.retry_delay_s
    if delay is None:
        delay = retry_delay_s(policy, job.attempts)
    deadline = job.created_at + job.total_timeout_s if job.total_timeout_s else None
    exhausted = job.attempts >= job.max_attempts
    past_deadline = deadline is not None and now + delay >= deadline
    if not failure.retryable or exhausted or past_deadline:
        if past_deadline and failure.retryable and not exhausted:
            values["error"]["message"] += f" (no time left: total_timeout_s={job.total_timeout_s})"
        values.update(state=JobState.DEAD.value, ended_at=now)
    elif delay <= 0:
        values.update(state=JobState.QUEUED.value, **WAITING_AGAIN)
    else:
        values.update(state=JobState.FAILED.value, available_at=now + delay, progress=None)
    return values
