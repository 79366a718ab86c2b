"""The row of a new job: what a submit, and a chain step whose parent completed, insert."""

from __future__ import annotations

import json
import uuid
from typing import Any

from taskpost.protocol import JobCreate, JobState, RetryPolicy
from taskpost.server.coordinator import Coordinator
from taskpost.server.services import schedule


def new_row(
    coord: Coordinator, namespace: str, spec: JobCreate, inputs: list[dict[str, Any]], now: float
) -> dict[str, Any]:
    """The ``jobs`` row of ``spec`` (queued, or scheduled when it is due later) with ``inputs``."""
    settings = coord.settings
    policy = spec.retry or RetryPolicy(
        base_s=settings.retry_base_s, factor=settings.retry_factor, cap_s=settings.retry_cap_s
    )
    due = schedule.due_at(spec, now)
    total_timeout_s = spec.total_timeout_s
    if due is not None and total_timeout_s is not None:
        # Deadlines count from created_at; a scheduled job's time runs from when it falls due.
        total_timeout_s += due - now
    row: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "namespace": namespace,
        "type": spec.type,
        "state": (JobState.QUEUED if due is None else JobState.SCHEDULED).value,
        "available_at": due,
        "priority": spec.priority.rank,
        "params": spec.params,
        "meta": spec.meta,
        "attempts": 0,
        "max_attempts": spec.max_attempts or settings.default_max_attempts,
        "timeout_s": spec.timeout_s if spec.timeout_s is not None else settings.default_timeout_s,
        "total_timeout_s": total_timeout_s,
        "retry": policy.model_dump(),
        "worker_type": spec.worker_type.value if spec.worker_type else None,
        "labels": json.dumps(sorted(set(spec.labels))),
        "idempotency_key": spec.idempotency_key,
        "inputs": inputs,
        "outputs": [],
        "created_at": now,
        "cancel_requested": False,
        "webhook_url": spec.webhook_url,
        "webhook_state": "waiting" if spec.webhook_url else None,
    }
    if spec.then:
        # Left out otherwise: SQL NULL (a None here would be stored as JSON null).
        row["then_steps"] = [step.model_dump(mode="json") for step in spec.then]
    return row
