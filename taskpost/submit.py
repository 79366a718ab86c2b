"""``taskpost submit``: the job from the command line's options, the server's warnings, and what
``--wait`` is waiting for, line by line."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import typer

from taskpost.client import Client
from taskpost.durations import InvalidDuration, parse
from taskpost.protocol import JobPublic, JobState, JobSubmitted, Priority

Echo = Callable[[str], None]


def parse_params(pairs: Sequence[str]) -> dict[str, Any]:
    """``key=value`` pairs; a value is JSON when it parses as JSON, else the text itself."""
    params: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"{pair!r} must look like key=value", param_hint="--param")
        try:
            params[key] = json.loads(value)
        except json.JSONDecodeError:
            params[key] = value
    return params


def parse_chain(types: Sequence[str], pairs: Sequence[str], chain_json: str | None) -> list[dict[str, Any]]:
    """The ``then`` of a submit: ``--then A --then B`` is A after the job, then B after A;
    ``--then-param STEP.key=value`` sets a step's param, STEP being its type (or its 1-based
    position when a type repeats); ``--then-json`` gives the whole ``then`` list instead."""
    if chain_json is not None:
        if types or pairs:
            raise typer.BadParameter(
                "give --then-json alone, or --then with --then-param", param_hint="--then-json"
            )
        try:
            steps = json.loads(chain_json)
        except json.JSONDecodeError as exc:
            raise typer.BadParameter(f"not JSON: {exc}", param_hint="--then-json") from None
        if not isinstance(steps, list):
            raise typer.BadParameter("must be a JSON list of steps", param_hint="--then-json")
        return steps
    params: list[dict[str, Any]] = [{} for _ in types]
    for pair in pairs:
        step, dot, rest = pair.partition(".")
        if not dot:
            raise typer.BadParameter(f"{pair!r} must look like STEP.key=value", param_hint="--then-param")
        params[_step_index(step, types, pair)].update(parse_params([rest]))
    chain: list[dict[str, Any]] = []
    for job_type, step_params in reversed(list(zip(types, params, strict=True))):
        chain = [{"type": job_type, "params": step_params, "then": chain}]
    return chain


def _step_index(step: str, types: Sequence[str], pair: str) -> int:
    if step.isdigit() and 1 <= int(step) <= len(types):
        return int(step) - 1
    found = [index for index, job_type in enumerate(types) if job_type == step]
    if len(found) == 1:
        return found[0]
    problem = "repeats: name it by position (1, 2, ...)" if found else "is not one of the --then steps"
    raise typer.BadParameter(f"{pair!r}: {step!r} {problem}", param_hint="--then-param")


def parse_run_at(text: str | None) -> datetime | None:
    """An ISO 8601 time with a zone: ``2026-12-03T09:00:00+01:00`` or ``2026-12-03T08:00:00Z``."""
    if text is None:
        return None
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        when = None
    if when is None or when.tzinfo is None:
        raise typer.BadParameter(
            f"{text!r} is not an ISO 8601 time with a zone: write e.g. 2026-12-03T08:00:00Z "
            "or 2026-12-03T09:00:00+01:00",
            param_hint="--run-at",
        )
    return when


def parse_delay(text: str | None) -> float | None:
    """Seconds, as a plain number or with a unit: ``90``, ``90s``, ``30m``, ``12h``, ``1d``."""
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        pass
    try:
        return parse(text)
    except InvalidDuration as exc:
        raise typer.BadParameter(str(exc), param_hint="--delay") from None


def checked_files(files: Sequence[Path]) -> dict[str, Path]:
    """The inputs by name (each file is its own input, named as the file is)."""
    inputs: dict[str, Path] = {}
    for path in files:
        if not path.is_file():
            raise typer.BadParameter(f"no such file: {path}", param_hint="--file")
        if path.name in inputs:
            raise typer.BadParameter(
                f"two inputs named {path.name!r}: an input is named as its file, rename one",
                param_hint="--file",
            )
        inputs[path.name] = path
    return inputs


def report_submitted(submitted: JobSubmitted, echo: Echo) -> None:
    """The server's warnings, and the job kept from an earlier submit with the same key."""
    for warning in submitted.warnings:
        echo(f"warning: {warning}")
    if not submitted.created:
        echo(f"job {submitted.job.id} was submitted before with this idempotency key: that job is shown")


def describe(job: JobPublic) -> str:
    """Where the job is, in one line: what ``--wait`` prints each time it moves."""
    name = f"job {job.id}"
    if job.state is JobState.SCHEDULED:
        due = job.available_at.isoformat() if job.available_at else "its time"
        return f"{name} is scheduled: due at {due}"
    if job.state is JobState.QUEUED:
        return f"{name} is queued: waiting for an agent that runs {job.type!r}{_routing(job)}"
    if job.state is JobState.PROCESSING:
        agent = f" on agent {job.worker_id}" if job.worker_id else ""
        return f"{name} is processing{agent} (attempt {job.attempts} of {job.max_attempts})"
    if job.state is JobState.FAILED:
        reason = f": {job.error.message}" if job.error else ""
        retry = f"; retried at {job.available_at.isoformat()}" if job.available_at else ""
        return f"{name} attempt {job.attempts} failed{reason}{retry}"
    if job.state is JobState.COMPLETED and job.cached_from:
        return f"{name} completed from the cache (the result of job {job.cached_from})"
    reason = f": {job.error.message}" if job.error else ""
    return f"{name} {job.state.value}{reason}"


def _routing(job: JobPublic) -> str:
    parts = []
    if job.worker_type is not None:
        parts.append(f"of type {job.worker_type.value}")
    if job.labels:
        parts.append("with the labels " + ", ".join(job.labels))
    return (" " + " and ".join(parts)) if parts else ""


def submit_and_wait(
    client: Client,
    job_type: str,
    params: dict[str, Any],
    files: dict[str, Path],
    *,
    priority: Priority,
    run_at: datetime | None,
    delay_s: float | None,
    cache: bool | None,
    webhook_url: str | None,
    then: Sequence[dict[str, Any]] = (),
    wait: bool,
    wait_timeout_s: float | None,
    output_dir: Path | None,
    echo: Echo,
) -> JobPublic:
    """Submit; with ``wait``, the job once it ended (and its outputs in ``output_dir``). With
    ``then``, waits for the whole chain and returns its last job; every job's outputs are saved,
    each in a folder named after its type and id."""
    submitted = client.submit(
        job_type,
        params,
        files=files or None,
        priority=priority,
        run_at=run_at,
        delay_s=delay_s,
        cache=cache,
        webhook_url=webhook_url,
        then=then,
    )
    report_submitted(submitted, echo)
    if not wait:
        return submitted.job
    said = [describe(submitted.job)]
    echo(said[0])

    def moved(job: JobPublic) -> None:
        if (line := describe(job)) != said[-1]:
            said.append(line)
            echo(line)

    deadline = None if wait_timeout_s is None else time.monotonic() + wait_timeout_s
    job = client.wait(submitted.job.id, wait_timeout_s, on_update=moved)
    if not then:
        _save_outputs(client, job, output_dir, echo)
        return job
    # One --wait-timeout for the whole chain, the first job's wait included.
    left = None if deadline is None else max(deadline - time.monotonic(), 0.0)
    chain = client.wait_chain(job.id, left)
    for each in chain:
        echo(describe(each) + (f" (after job {each.parent_id})" if each.parent_id else ""))
        folder = None if output_dir is None else output_dir / f"{each.type}-{each.id[:8]}"
        _save_outputs(client, each, folder, echo)
    return chain[-1] if all(each.state is JobState.COMPLETED for each in chain) else _first_failed(chain)


def _first_failed(chain: Sequence[JobPublic]) -> JobPublic:
    return next(each for each in chain if each.state is not JobState.COMPLETED)


def _save_outputs(client: Client, job: JobPublic, output_dir: Path | None, echo: Echo) -> None:
    if output_dir is not None and job.outputs:
        saved = client.download_outputs(job.id, output_dir)
        echo(f"saved {len(saved)} output{'' if len(saved) == 1 else 's'} in {output_dir}")
