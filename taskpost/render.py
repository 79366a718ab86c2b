"""Plain-text tables for the CLI, from the protocol's models."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from taskpost.protocol import JobState, JobTypeInfo, KeyPublic, Role, Stats

_STATES = tuple(state.value for state in JobState)


def _table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(lines)


def stats_text(stats: Stats) -> str:
    per_queue: dict[tuple[str, str], dict[str, int]] = defaultdict(dict)
    for entry in stats.counts:
        per_queue[(entry.type, entry.priority)][entry.state] = entry.count
    queue_rows = [
        [job_type, priority, *(str(counts.get(state, 0)) for state in _STATES)]
        for (job_type, priority), counts in per_queue.items()
    ]
    worker_rows = [
        [
            w.name or w.id[:8],
            w.worker_type.value,
            ",".join(w.task_types),
            ",".join(w.labels) or "-",
            f"{w.running_tasks}/{w.max_concurrent}",
            w.last_seen_at.isoformat(),
            "alive" if w.alive else "gone",
        ]
        for w in stats.workers
    ]
    totals = ", ".join(f"{state} {stats.totals.get(state, 0)}" for state in _STATES)
    return "\n".join(
        [
            _table(["type", "priority", *_STATES], queue_rows),
            f"\ntotal: {totals}\n",
            f"{len(stats.workers)} agents",
            _table(
                ["agent", "kind", "task types", "labels", "running", "last heartbeat", "state"], worker_rows
            ),
        ]
    )


def keys_table(keys: list[KeyPublic]) -> str:
    rows = [
        [
            k.id,
            k.prefix + "…",
            k.role.value,
            ",".join(k.namespaces) or ("default" if k.role is Role.CLIENT else "all"),
            k.name or "",
            k.created_at.isoformat(),
            k.last_used_at.isoformat() if k.last_used_at else "never",
            k.revoked_at.isoformat() if k.revoked_at else "",
        ]
        for k in keys
    ]
    return _table(["id", "prefix", "role", "namespaces", "name", "created", "last used", "revoked"], rows)


def _param_names(schema: dict[str, Any] | None) -> str:
    """``beam_size, language, url`` (and ``...`` when the handler takes further fields)."""
    if schema is None:
        return "(not declared)"
    names = sorted(schema.get("properties") or {})
    if schema.get("additionalProperties", True) is not False:
        names.append("...")
    return ", ".join(names) or "(none)"


def types_table(types: list[JobTypeInfo]) -> str:
    rows = [
        [
            t.name,
            t.version or "-",
            str(t.agents),
            "yes" if t.online else "no",
            t.last_seen_at.isoformat() if t.last_seen_at else "never",
            _param_names(t.params_schema),
        ]
        for t in types
    ]
    return _table(["type", "version", "agents", "online", "last seen", "params"], rows)
