"""Tables for the CLI, from the protocol's models: rich tables in colour on a terminal, plain
aligned text otherwise (pipes, files, tests), and JSON for ``--json``."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import typer
from pydantic import BaseModel
from rich.console import Console, Group, RenderableType
from rich.table import Table as RichTable
from rich.text import Text

from taskpost.durations import ago, until
from taskpost.protocol import FileInfo, JobPublic, JobState, JobTypeInfo, KeyPublic, Role, Stats, WorkerPublic

RETRY_SCHEDULED = "retry scheduled"
"""How a FAILED job is shown: it waits for its next attempt (``rq info``'s "scheduled")."""

STYLES = {
    "completed": "green",
    "processing": "cyan",
    "queued": "blue",
    "scheduled": "magenta",
    RETRY_SCHEDULED: "yellow",
    "failed": "yellow",
    "dead": "bold red",
    "cancelled": "dim",
    "alive": "green",
    "gone": "dim",
    "draining": "yellow",
    "expired": "bold red",
    "revoked": "red",
}
"""The colour of a cell or column named so."""


def state_label(state: JobState | str) -> str:
    return RETRY_SCHEDULED if state == JobState.FAILED else str(state)


@dataclass(frozen=True)
class Table:
    """Rows of text under headers; printed as ``rich`` on a terminal, plain text elsewhere."""

    headers: Sequence[str]
    rows: Sequence[Sequence[str]]
    title: str | None = None
    footer: list[str] = field(default_factory=list)

    def text(self) -> str:
        widths = [max([len(h), *(len(r[i]) for r in self.rows)]) for i, h in enumerate(self.headers)]
        lines = [self.title] if self.title else []
        lines.append("  ".join(h.ljust(w) for h, w in zip(self.headers, widths, strict=True)).rstrip())
        lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in self.rows]
        return "\n".join(lines + self.footer)

    def rich(self) -> RenderableType:
        table = RichTable(title=self.title, title_justify="left", header_style="bold")
        for header in self.headers:
            table.add_column(header, style=STYLES.get(header))
        for row in self.rows:
            table.add_row(*(Text(cell, style=STYLES.get(cell, "")) for cell in row))
        return Group(table, *self.footer) if self.footer else table


def is_terminal() -> bool:
    return Console().is_terminal


def show(*tables: Table) -> None:
    """Print the tables: in colour on a terminal, as plain text otherwise."""
    console = Console()
    if console.is_terminal:
        for table in tables:
            console.print(table.rich())
    else:
        typer.echo("\n\n".join(table.text() for table in tables))


def as_json(value: BaseModel | Sequence[BaseModel], *, indent: int | None = 2) -> str:
    if isinstance(value, BaseModel):
        return value.model_dump_json(indent=indent)
    return json.dumps([item.model_dump(mode="json") for item in value], indent=indent)


def _when(value: Any) -> str:
    return value.isoformat(timespec="seconds") if value is not None else "-"


def stats_tables(stats: Stats, *, only_failures: bool = False) -> list[Table]:
    """``taskpost info``: jobs per type, priority and state, then the agents."""
    states = [JobState.FAILED, JobState.DEAD] if only_failures else list(JobState)
    per_queue: dict[tuple[str, str], dict[str, int]] = defaultdict(dict)
    for entry in stats.counts:
        per_queue[(entry.type, entry.priority)][entry.state] = entry.count
    rows = [
        [job_type, priority, *(str(counts.get(state, 0)) for state in states)]
        for (job_type, priority), counts in sorted(per_queue.items())
        if not only_failures or any(counts.get(state, 0) for state in states)
    ]
    totals = ", ".join(f"{state_label(s)} {stats.totals.get(s, 0)}" for s in states)
    jobs = Table(["type", "priority", *map(state_label, states)], rows, "jobs", [f"total: {totals}"])
    return [jobs, workers_table(stats.workers)]


def _worker_state(worker: WorkerPublic) -> str:
    if not worker.alive:
        return "gone"
    return "draining" if worker.draining else "alive"


def workers_table(workers: Sequence[WorkerPublic]) -> Table:
    rows = [
        [
            w.name or "-",
            w.id,
            w.worker_type.value,
            ",".join(w.task_types),
            ",".join(w.labels) or "-",
            ",".join(w.namespaces) or "all",
            ",".join(w.allowed_task_types) or "all",
            f"{w.running_tasks}/{w.max_concurrent}",
            ago(w.last_seen_at),
            _worker_state(w),
        ]
        for w in workers
    ]
    headers = ["agent", "id", "kind", "task types", "labels", "namespaces", "allowed types", "running"]
    title = f"{len(workers)} agent{'' if len(workers) == 1 else 's'}"
    return Table([*headers, "last heartbeat", "state"], rows, title)


def _key_state(key: KeyPublic) -> str:
    if key.revoked_at is not None:
        return "revoked"
    if key.expires_at is not None:
        return until(key.expires_at)
    return "never expires"


def keys_table(keys: Sequence[KeyPublic]) -> Table:
    rows = [
        [
            k.id,
            k.prefix + "…",
            k.role.value,
            ",".join(k.namespaces) or ("default" if k.role is Role.CLIENT else "all"),
            ",".join(k.task_types) or "-",
            k.name or "",
            _when(k.created_at),
            _when(k.last_used_at) if k.last_used_at else "never",
            _when(k.expires_at),
            _key_state(k),
        ]
        for k in keys
    ]
    headers = ["id", "prefix", "role", "namespaces", "task types", "name", "created", "last used"]
    return Table([*headers, "expires", "state"], rows)


def _param_names(schema: dict[str, Any] | None) -> str:
    """``beam_size, language, url`` (and ``...`` when the handler takes further fields)."""
    if schema is None:
        return "(not declared)"
    names = sorted(schema.get("properties") or {})
    if schema.get("additionalProperties", True) is not False:
        names.append("...")
    return ", ".join(names) or "(none)"


def types_table(types: Sequence[JobTypeInfo]) -> Table:
    rows = [
        [
            t.name,
            t.version or "-",
            str(t.agents),
            "yes" if t.online else "no",
            _when(t.last_seen_at) if t.last_seen_at else "never",
            _param_names(t.params_schema),
        ]
        for t in types
    ]
    return Table(["type", "version", "agents", "online", "last seen", "params"], rows)


def _progress(job: JobPublic) -> str:
    return "-" if job.progress is None else f"{job.progress:.0%}"


def jobs_table(jobs: Sequence[JobPublic], next_cursor: str | None = None) -> Table:
    rows = [
        [
            j.id,
            j.type,
            j.priority.value,
            state_label(j.state),
            str(j.attempts),
            _progress(j),
            _when(j.created_at),
        ]
        for j in jobs
    ]
    footer = [f"next page: --cursor {next_cursor}"] if next_cursor else []
    return Table(["id", "type", "priority", "state", "attempts", "progress", "created"], rows, footer=footer)


def job_table(job: JobPublic) -> Table:
    """One job, a field a row."""
    fields = [
        ("id", job.id),
        ("type", job.type),
        ("namespace", job.namespace),
        ("state", state_label(job.state)),
        ("priority", job.priority.value),
        ("attempts", f"{job.attempts} of {job.max_attempts}"),
        ("agent", job.worker_id or "-"),
        ("progress", _progress(job) + (f" {job.progress_message}" if job.progress_message else "")),
        ("created", _when(job.created_at)),
        ("started", _when(job.started_at)),
        ("ended", _when(job.ended_at)),
        ("available", _when(job.available_at)),
        ("params", json.dumps(job.params)),
        ("error", job.error.message if job.error else "-"),
        ("outputs", ", ".join(o.name for o in job.outputs) or "-"),
    ]
    if job.parent_id:
        fields.append(("parent", job.parent_id))
    if job.children:
        fields.append(("children", ", ".join(job.children)))
    if job.then:
        fields.append(("then", " | ".join(step.get("type", "?") for step in job.then)))
    if job.result is not None:
        fields.append(("result", json.dumps(job.result)[:500]))
    return Table(["field", "value"], [[name, value] for name, value in fields])


def outputs_table(outputs: Sequence[FileInfo]) -> Table:
    return Table(["name", "bytes", "sha256"], [[o.name, str(o.size), o.sha256] for o in outputs])
