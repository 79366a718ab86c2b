"""Plain-text tables for the CLI."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

_STATES = ("queued", "processing", "failed", "completed", "dead", "cancelled")


def _table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(lines)


def stats_text(stats: dict[str, Any]) -> str:
    per_queue: dict[tuple[str, str], dict[str, int]] = defaultdict(dict)
    for entry in stats["counts"]:
        per_queue[(entry["type"], entry["priority"])][entry["state"]] = entry["count"]
    queue_rows = [
        [job_type, priority, *(str(counts.get(state, 0)) for state in _STATES)]
        for (job_type, priority), counts in per_queue.items()
    ]
    worker_rows = [
        [
            w["name"] or w["id"][:8],
            w["worker_type"],
            ",".join(w["task_types"]),
            ",".join(w["labels"]) or "-",
            f"{w['running_tasks']}/{w['max_concurrent']}",
            w["last_seen_at"],
            "alive" if w["alive"] else "gone",
        ]
        for w in stats["workers"]
    ]
    totals = ", ".join(f"{state} {stats['totals'].get(state, 0)}" for state in _STATES)
    return "\n".join(
        [
            _table(["type", "priority", *_STATES], queue_rows),
            f"\ntotal: {totals}\n",
            f"{len(stats['workers'])} agents",
            _table(
                ["agent", "kind", "task types", "labels", "running", "last heartbeat", "state"], worker_rows
            ),
        ]
    )


def keys_table(keys: list[dict[str, Any]]) -> str:
    rows = [
        [
            k["id"],
            k["prefix"] + "…",
            k["role"],
            ",".join(k.get("namespaces") or []) or ("all" if k["role"] != "client" else "default"),
            k["name"] or "",
            k["created_at"],
            k["last_used_at"] or "never",
            k["revoked_at"] or "",
        ]
        for k in keys
    ]
    return _table(["id", "prefix", "role", "namespaces", "name", "created", "last used", "revoked"], rows)
