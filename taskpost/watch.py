"""``taskpost jobs watch``: follow one job until it ends, with its progress, the handler's message
and its partial output (a transcript as it grows).

Fed by the job's event stream (``GET /jobs/{id}/events/stream``). With a timeout, or against a
coordinator without streams, it follows the job with held reads instead
(``GET /jobs/{id}?wait_s=&seen_state=``), every ``POLL_S``, without partial output.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass

import typer
from pydantic import JsonValue
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

from taskpost.client import Client, NotFound, WaitTimedOut
from taskpost.protocol import JobPublic, JobState
from taskpost.submit import describe

POLL_S = 0.5
"""How long each held read may last: the longest a new progress value waits to be shown."""


@dataclass(frozen=True)
class Update:
    """The job as last known, and the chunk of partial output that arrived with this update."""

    job: JobPublic
    partial: JsonValue = None


def _seen(job: JobPublic) -> tuple[object, ...]:
    return (job.state, job.attempts, job.worker_id, job.progress, job.progress_message)


def follow(client: Client, job_id: str, timeout_s: float | None = None) -> Iterator[Update]:
    """The job now, then each change of its state, attempt, agent, progress or message, and each
    chunk of partial output, until it has ended; WaitTimedOut after ``timeout_s``."""
    job = client.get(job_id)
    yield Update(job)
    if job.state.is_terminal:
        return
    if timeout_s is None:
        try:
            yield from _from_stream(client, job)
            return
        except NotFound:
            job = client.get(job_id)  # a coordinator without event streams
    yield from _by_polling(client, job, timeout_s)


def _from_stream(client: Client, job: JobPublic) -> Iterator[Update]:
    for event in client.stream_events(job.id):
        if event.kind == "state":
            job = client.get(job.id)  # the whole job: attempts, agent, error
            yield Update(job)
        elif event.kind == "progress":
            job = job.model_copy(update={"progress": event.progress, "progress_message": event.message})
            yield Update(job)
        elif event.kind == "partial":
            yield Update(job, event.partial)
        if job.state.is_terminal:
            return


def _by_polling(client: Client, job: JobPublic, timeout_s: float | None) -> Iterator[Update]:
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    last = _seen(job)
    while not job.state.is_terminal:
        if deadline is not None and time.monotonic() >= deadline:
            raise WaitTimedOut(job)
        job = client.get(job.id, wait_s=POLL_S, seen_state=job.state)
        if _seen(job) != last:
            last = _seen(job)
            yield Update(job)


def partial_text(chunk: JsonValue) -> str:
    """A chunk as one line: a transcript segment's text, else its JSON."""
    if isinstance(chunk, dict) and isinstance(chunk.get("text"), str):
        return str(chunk["text"]).strip()
    return chunk if isinstance(chunk, str) else json.dumps(chunk)


def progress_line(job: JobPublic) -> str:
    """``processing 40% (12.0 s of audio)``: what the plain output prints as the job moves."""
    parts = [job.state.value]
    if job.progress is not None and not job.state.is_terminal:
        parts.append(f"{job.progress:.0%}")
    if job.progress_message and not job.state.is_terminal:
        parts.append(f"({job.progress_message})")
    return " ".join(parts)


def watch_json(updates: Iterator[Update]) -> JobPublic:
    """One JSON line per change (NDJSON): the job, or ``{"partial": chunk}``; the last job."""
    job: JobPublic | None = None
    for update in updates:
        job = update.job
        if update.partial is not None:
            typer.echo(json.dumps({"job_id": job.id, "partial": update.partial}))
        else:
            typer.echo(job.model_dump_json())
    assert job is not None
    return job


def watch_plain(updates: Iterator[Update]) -> JobPublic:
    """A line when the job moves (``describe``) or its progress changes, and each partial chunk."""
    job: JobPublic | None = None
    said = ""
    for update in updates:
        job = update.job
        if update.partial is not None:
            typer.echo(partial_text(update.partial))
            continue
        line = describe(job)
        if job.state is JobState.PROCESSING and job.progress is not None:
            line = f"{line}: {progress_line(job)}"
        if line != said:
            typer.echo(line)
            said = line
    assert job is not None
    return job


def watch_live(updates: Iterator[Update]) -> JobPublic:
    """A progress bar with the handler's message; changes of state and partial output above it."""
    job: JobPublic | None = None
    said = ""
    columns = (TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(), TimeElapsedColumn())
    with Progress(*columns, console=Console(), transient=False) as bar:
        task = bar.add_task("waiting", total=1.0)
        for update in updates:
            job = update.job
            if update.partial is not None:
                bar.console.print(partial_text(update.partial), highlight=False, markup=False)
                continue
            if (line := describe(job)) != said:
                bar.console.print(line, highlight=False, markup=False)
                said = line
            message = job.progress_message or job.state.value
            done = 1.0 if job.state is JobState.COMPLETED else (job.progress or 0.0)
            bar.update(task, completed=done, description=message)
    assert job is not None
    return job
