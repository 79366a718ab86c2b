"""The result cache: a job submitted with ``cache`` takes the result of an equal completed job.

Equal means the same namespace and cache key: SHA-256 of the type, the handler version the
coordinator knows for it (the newest parameter schema an agent declared, ``""`` before any),
the params as canonical JSON, and the inputs' names and digests. Every job submitted with
``cache`` stores its key; a later equal submit finds a completed one and is inserted completed
with its result and outputs, ``cached_from`` naming it and no attempt: nothing is queued.

Only jobs that ran serve the cache, never a copy: an entry lives as long as the job it points
to, and retention deleting that job ends it. The copy takes its own references on the output
blobs (shared, not copied), so either job may be deleted first. A job that reads a
``local_path`` neither stores a key nor is served: the coordinator cannot see that file. A job's
``then`` is not part of the key: a copy creates its own steps (server.services.chains).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Text, cast, select
from sqlalchemy.ext.asyncio import AsyncConnection

from taskpost.protocol import LOCAL_PATH_PARAM, JobCreate, JobState
from taskpost.server.coordinator import Coordinator
from taskpost.server.services.jobs import JOBS

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CachedResult:
    """What a copy takes from the completed job it is served from."""

    job_id: str
    result: Any
    outputs: list[dict[str, Any]]


def wanted(spec: JobCreate) -> bool:
    """Whether the job of ``spec`` keeps a cache key (and may be served from the cache)."""
    return bool(spec.cache) and LOCAL_PATH_PARAM not in spec.params


def _normalised(value: Any) -> Any:
    """``value`` with integral floats as integers: ``1.0`` and ``1`` ask for the same work."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {key: _normalised(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_normalised(item) for item in value]
    return value


def cache_key(job_type: str, version: str, params: dict[str, Any], inputs: Sequence[dict[str, Any]]) -> str:
    """SHA-256 (hex) of what makes two jobs do the same work."""
    files = sorted([entry["name"], entry["sha256"]] for entry in inputs)
    # ASCII escapes: params may hold a lone surrogate, which has no UTF-8 encoding.
    canonical = json.dumps(
        [job_type, version, _normalised(params), files], sort_keys=True, separators=(",", ":")
    )
    return hashlib.sha256(canonical.encode("ascii")).hexdigest()


async def find(conn: AsyncConnection, coord: Coordinator, namespace: str, key: str) -> CachedResult | None:
    """The newest completed job of ``namespace`` with ``key`` that ran (not a copy), if any.

    On PostgreSQL the row is share-locked until the transaction ends, so that retention cannot
    delete it (and drop its blobs' references) before the copy has taken its own."""
    query = (
        select(
            JOBS.c.id, cast(JOBS.c.result, Text).label("result"), cast(JOBS.c.outputs, Text).label("outputs")
        )
        .where(
            JOBS.c.namespace == namespace,
            JOBS.c.cache_key == key,
            JOBS.c.state == JobState.COMPLETED.value,
            JOBS.c.cached_from.is_(None),
        )
        .order_by(JOBS.c.ended_at.desc())
        .limit(1)
    )
    if coord.db.dialect.locks_rows:
        query = query.with_for_update(read=True)
    row = (await conn.execute(query)).first()
    if row is None:
        return None
    try:
        result = json.loads(row.result) if row.result is not None else None
        outputs = json.loads(row.outputs)
    except ValueError:
        logger.error(
            "job %s cannot serve the cache: its result or outputs are not JSON",
            row.id,
            extra={"job_id": row.id, "action": "corrupt_row"},
        )
        return None
    return CachedResult(row.id, result, outputs)


def completed_copy(row: dict[str, Any], source: CachedResult, now: float) -> dict[str, Any]:
    """``row`` (a new job) as the completed copy of ``source``."""
    return {
        **row,
        "state": JobState.COMPLETED.value,
        "result": source.result,
        "outputs": [dict(entry) for entry in source.outputs],
        "cached_from": source.job_id,
        "ended_at": now,
        "available_at": None,
        "progress": 1.0,
    }
