"""Chained jobs: the steps of a job's ``then`` become jobs of their own when it completes.

At submit every step, nested ones too, is checked like a job of its own (``check``): its type
known, its params against the type's schema, its webhook URL, its ``from_job`` references. The
steps are stored on the job (``then_steps``).

When the job completes (an attempt that succeeded, or a submit served from the result cache),
``spawn`` inserts one child per step in the same transaction: the parent's namespace, the
parent's final outputs as its inputs (each child holds its own blob references), ``parent_id``
and ``chain_index`` pointing back, the step's own steps in its ``then_steps``. The parent's
``children`` lists them in step order. The completing transaction holds the parent's row and
runs only for a job that was processing under the completing lease, so a parent spawns once;
the unique index on (parent_id, chain_index) refuses a second spawn rather than duplicating it.
A parent that failed, died or was cancelled spawns nothing; one asked to cancel while it ran
spawns nothing either (event ``chain_dropped``).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert, update
from sqlalchemy.ext.asyncio import AsyncConnection

from taskpost.protocol import LOCAL_PATH_PARAM, ChainStep, JobCreate, JobState, Priority
from taskpost.protocol.fields import MAX_INPUTS
from taskpost.server import outbound
from taskpost.server.coordinator import Coordinator
from taskpost.server.errors import InvalidParams
from taskpost.server.services import blob_refs, events, job_inputs, job_types, param_checks
from taskpost.server.services.jobs import JOBS
from taskpost.server.services.new_jobs import new_row


def _steps(specs: Sequence[JobCreate]) -> Iterator[tuple[str, ChainStep]]:
    """Every step of ``specs`` with the field that names it (``then[0].then[1]``; in a batch
    ``jobs.2.then[0]``), parents before their own steps."""

    def walk(prefix: str, steps: list[ChainStep]) -> Iterator[tuple[str, ChainStep]]:
        for index, step in enumerate(steps):
            field = f"{prefix}then[{index}]"
            yield field, step
            yield from walk(f"{field}.", step.then)

    for number, spec in enumerate(specs):
        yield from walk(f"jobs.{number}." if len(specs) > 1 else "", spec.then)


async def check(coord: Coordinator, namespace: str, specs: Sequence[JobCreate]) -> None:
    """Refuse the submit (422 naming the step's field) when a step would be refused as a job."""
    steps = list(_steps(specs))
    if not steps:
        return
    await job_types.ensure_known(coord, {step.type for _, step in steps})
    for field, step in steps:
        if LOCAL_PATH_PARAM in step.params:
            raise InvalidParams(
                f"{field}: a step reads its parent's outputs, not a file on an agent's machine",
                field=f"{field}.params.{LOCAL_PATH_PARAM}",
            )
        if step.webhook_url is not None:
            await outbound.refuse_unsafe_url(
                step.webhook_url,
                field=f"{field}.webhook_url",
                allow_private=coord.settings.allow_private_webhooks,
            )
        try:
            await param_checks.check(coord, [JobCreate(type=step.type, params=step.params)])
        except InvalidParams as exc:
            raise _under(exc, field) from None
    async with coord.db.read() as conn:
        for field, step in steps:
            # Checked now, resolved when the step becomes a job (the parent's outputs come first).
            await job_inputs.resolve(conn, coord, namespace, step.params, prefix=f"{field}.params")


def _under(exc: InvalidParams, field: str) -> InvalidParams:
    """``exc`` (about a lone job's ``params``) as a problem of the step at ``field``."""
    details = dict(exc.details or {})
    if "field" in details:
        details["field"] = f"{field}.{details['field']}"
    if isinstance(details.get("errors"), list):
        details["errors"] = [{**error, "field": f"{field}.{error['field']}"} for error in details["errors"]]
    return InvalidParams(f"{field}: {exc.message}", **details)


@dataclass(frozen=True)
class Parent:
    """A job that has just completed, with what its children take from it."""

    id: str
    namespace: str
    priority: int
    attempt: int
    steps: list[dict[str, Any]]
    outputs: list[dict[str, Any]]
    cancel_requested: bool = False


@dataclass(frozen=True)
class Spawned:
    """A child job inserted by ``spawn``, for what is counted once its transaction commits."""

    id: str
    namespace: str
    type: str
    priority: Priority
    state: JobState


async def spawn(
    conn: AsyncConnection, coord: Coordinator, parents: Sequence[Parent], now: float
) -> list[Spawned]:
    """Insert the children of ``parents`` (in the transaction that completed them), link them
    both ways and record their events; ``announce`` them after the commit."""
    rows: list[dict[str, Any]] = []
    log: list[events.Event] = []
    for parent in parents:
        if not parent.steps:
            continue
        if parent.cancel_requested:
            detail = f"cancel was requested: {len(parent.steps)} then step(s) not created"
            log.append(events.Event(parent.id, "chain_dropped", parent.attempt, detail=detail))
            continue
        children = [
            await _child_row(conn, coord, parent, index, step, now) for index, step in enumerate(parent.steps)
        ]
        ids = [child["id"] for child in children]
        await conn.execute(update(JOBS).where(JOBS.c.id == parent.id).values(children=ids))
        log.append(events.Event(parent.id, "children_created", parent.attempt, detail=", ".join(ids)))
        for child in children:
            log.append(events.Event(child["id"], "chained", 0, detail=f"after job {parent.id}"))
            log.append(events.state_event(child["id"], JobState(child["state"]), 0))
        rows += children
    # One INSERT per run of rows with the same columns (a step with steps of its own has more).
    for _, alike in itertools.groupby(rows, key=lambda row: sorted(row)):
        await conn.execute(insert(JOBS), list(alike))
    await blob_refs.add(conn, [entry["blob_key"] for row in rows for entry in row["inputs"]])
    await events.record(conn, log, now)
    return [
        Spawned(
            row["id"],
            row["namespace"],
            row["type"],
            Priority.from_rank(row["priority"]),
            JobState(row["state"]),
        )
        for row in rows
    ]


async def _child_row(
    conn: AsyncConnection, coord: Coordinator, parent: Parent, index: int, stored: dict[str, Any], now: float
) -> dict[str, Any]:
    step = ChainStep.model_validate(stored)
    spec = JobCreate(
        type=step.type,
        params=step.params,
        priority=step.priority or Priority.from_rank(parent.priority),
        timeout_s=step.timeout_s,
        max_attempts=step.max_attempts,
        worker_type=step.worker_type,
        labels=step.labels,
        meta=step.meta,
        webhook_url=step.webhook_url,
        then=step.then,
    )
    inputs = [dict(entry) for entry in parent.outputs]
    problem: InvalidParams | None = None
    try:
        params, added = await job_inputs.resolve(
            conn, coord, parent.namespace, spec.params, {entry["name"] for entry in inputs}
        )
        spec, inputs = spec.model_copy(update={"params": params}), inputs + added
    except InvalidParams as exc:  # checked at submit; the job it names may since have gone
        problem = exc
    if problem is None and len(inputs) > MAX_INPUTS:
        problem = InvalidParams(
            f"the parent's {len(parent.outputs)} outputs and the step's references make {len(inputs)} "
            f"inputs; a job has at most {MAX_INPUTS}",
            field="inputs",
        )
    row = new_row(coord, parent.namespace, spec, inputs, now)
    row.update(parent_id=parent.id, chain_index=index)
    if problem is not None:
        error = {"message": problem.message, "kind": "invalid_params", "traceback": None, "retryable": False}
        row.update(state=JobState.DEAD.value, ended_at=now, error=error)
    return row


def announce(coord: Coordinator, spawned: Sequence[Spawned]) -> None:
    """After the commit: count the children and wake the agents and streams waiting for them."""
    if not spawned:
        return
    for (namespace, job_type, priority), alike in itertools.groupby(
        sorted(spawned, key=lambda child: (child.namespace, child.type, child.priority.value)),
        key=lambda child: (child.namespace, child.type, child.priority.value),
    ):
        coord.metrics.submitted(namespace, job_type, priority, len(list(alike)))
    for child in spawned:
        if child.state is JobState.DEAD:
            coord.metrics.dead(child.type)
    coord.events.notify()
    coord.job_changes.notify()
    if any(child.state is JobState.QUEUED for child in spawned):
        coord.notifier.notify()
