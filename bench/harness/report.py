"""The markdown report (machine, table, notes) and the JSON of every raw sample."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.harness import table
from bench.harness.orchestrate import Outcome
from bench.harness.workloads import BenchSettings

METHOD_NOTES = (
    "Ratios are median over median across runs; in brackets, the range of the per-run ratios "
    "(runs are paired: every run goes through all systems in turn). For latency a ratio below 1 "
    "is better.",
    "Enqueue: Taskpost `POST /api/v1/jobs/batch` of 500 jobs; RQ `Queue.enqueue_many` of "
    "`Queue.prepare_data` items, one pipeline per 500; Celery `apply_async` in a loop over one "
    "shared producer (no batch publish in Celery), results ignored.",
    "Drain: the queue filled first, then the workers started; first job start to last job end by "
    "each system's own clocks: Taskpost `started_at`/`ended_at` from its API, RQ the jobs' "
    "`started_at`/`ended_at`, Celery `time.time()` at `task_prerun`/`task_postrun` kept in each "
    "worker process's memory and written when it shuts down (nothing per task goes over the wire).",
    "Taskpost agents run with `--task-type noop` (they load no media models); RQ and Celery "
    "workers load nothing either. RQ: `rq.worker.SimpleWorker` burst workers. Celery: redis "
    "broker, `--without-gossip --without-mingle --without-heartbeat`, early acks, default prefetch.",
    "Latency, one job at a time to idle workers: Taskpost `started_at - created_at` (coordinator "
    "clock, 1 long-polling agent); RQ `started_at - enqueued_at` (1 SimpleWorker); Celery the "
    "worker's `task_prerun` time minus the client's time just before `apply_async` (1 solo worker).",
    "RQ and Celery share one private redis-server (127.0.0.1, `--save '' --appendonly no`), "
    "flushed before each of their runs.",
)


def markdown(
    outcome: Outcome, settings: BenchSettings, facts: dict[str, str], command: str, missing: Sequence[str]
) -> str:
    lines = [f"Command: `{command}`", ""]
    lines.append("Machine: " + ", ".join(f"{key} {value}" for key, value in facts.items()))
    lines.append(
        f"Settings: {settings.jobs} jobs per round, {settings.runs} run(s), "
        f"{settings.latency_samples} latency samples, worker counts {list(settings.worker_counts)}, "
        f"agents `--max-concurrent {settings.agent_concurrency}`"
    )
    lines += ["", table.render(outcome.samples, outcome.systems, settings.agent_concurrency), ""]
    lines += [f"- {note}" for note in (*METHOD_NOTES, *missing, *outcome.notes)]
    return "\n".join(lines) + "\n"


def raw_json(
    outcome: Outcome, settings: BenchSettings, facts: dict[str, str], pids: Sequence[int], left: Sequence[int]
) -> dict[str, Any]:
    return {
        "machine": facts,
        "settings": {
            "jobs": settings.jobs,
            "runs": settings.runs,
            "latency_samples": settings.latency_samples,
            "worker_counts": list(settings.worker_counts),
            "agent_concurrency": settings.agent_concurrency,
        },
        "systems": outcome.systems,
        "notes": outcome.notes,
        "samples": [sample.to_json() for sample in outcome.samples],
        "started_pids": list(pids),
        "left_running": list(left),
    }


def write(path: Path, text: str, data: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    json_path = path.with_suffix(".json")
    json_path.write_text(json.dumps(data, indent=1))
    return json_path
