"""The body of a webhook delivery: a small summary of a job that ended, with links to the rest."""

from __future__ import annotations

import json
import uuid
from typing import Any
from urllib.parse import quote

from taskpost.protocol import API_PREFIX
from taskpost.server.services.convert import to_datetime

MAX_TEXT = 1000
"""Longest string kept in a result summary or error message (characters)."""
MAX_ITEMS = 20
"""Most list items or object keys kept per level of a result summary."""
MAX_DEPTH = 4
MAX_RESULT_BYTES = 8192
"""A result summary larger than this as JSON is left out; the job's own page has it."""
_DELIVERY_IDS = uuid.UUID("4f0b6b1e-5b7a-4a8e-9a55-2f1d6c1c0a10")


def event_name(state: str) -> str:
    return f"job.{state}"


def delivery_id(job_id: str, ended_at: float) -> str:
    """The same for every try of one notification (receivers may drop repeats); a job requeued
    and ended again is a new one."""
    return str(uuid.uuid5(_DELIVERY_IDS, f"{job_id}/{ended_at!r}"))


def summarize(value: Any, depth: int = 0) -> tuple[Any, bool]:
    """``value`` with long strings, long lists and deep nesting cut; and whether anything was cut."""
    if isinstance(value, str):
        return (value[:MAX_TEXT], True) if len(value) > MAX_TEXT else (value, False)
    if isinstance(value, dict | list) and depth >= MAX_DEPTH:
        return None, True
    if isinstance(value, dict):
        cut = len(value) > MAX_ITEMS
        summary: dict[str, Any] = {}
        for key, item in list(value.items())[:MAX_ITEMS]:
            summary[key], item_cut = summarize(item, depth + 1)
            cut = cut or item_cut
        return summary, cut
    if isinstance(value, list):
        cut = len(value) > MAX_ITEMS
        items: list[Any] = []
        for item in value[:MAX_ITEMS]:
            kept, item_cut = summarize(item, depth + 1)
            items.append(kept)
            cut = cut or item_cut
        return items, cut
    return value, False


def job_url(job_id: str) -> str:
    return f"{API_PREFIX}/jobs/{quote(job_id, safe='')}"


def build(job: Any) -> dict[str, Any]:
    """The payload for ``job``, a decoded ``jobs`` row of a job that ended."""
    result, truncated = summarize(job.result)
    if len(json.dumps(result)) > MAX_RESULT_BYTES:
        result, truncated = None, True
    error = job.error if isinstance(job.error, dict) else None
    finished = to_datetime(job.ended_at)
    return {
        "event": event_name(job.state),
        "id": job.id,
        "type": job.type,
        "namespace": job.namespace,
        "state": job.state,
        "attempts": job.attempts,
        "result": result,
        "result_truncated": truncated,
        "error": None
        if error is None
        else {"kind": error.get("kind"), "message": str(error.get("message", ""))[:MAX_TEXT]},
        "outputs": [
            {
                "name": output["name"],
                "size": output["size"],
                "sha256": output["sha256"],
                "url": f"{job_url(job.id)}/outputs/{quote(output['name'], safe='')}",
            }
            for output in job.outputs or []
        ],
        "cached_from": job.cached_from,
        "finished_at": None if finished is None else finished.isoformat(),
        "url": job_url(job.id),
    }


def encode(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode()
