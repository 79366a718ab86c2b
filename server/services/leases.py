"""Agent-side task operations under a lease: heartbeat, complete, release, task files.

Every operation that touches a running task checks its lease token; a token that is not the
task's live lease is stale. Completions are idempotent for the token that ended the attempt,
whether it succeeded or failed. The outputs an attempt uploaded become the job's when it
succeeds and are dropped at any other end (server.services.attempt_outputs). (Claims, which hand
leases out, are in server.services.claims; output uploads in server.services.uploads.) The
completion that makes a job COMPLETED also creates the jobs of its ``then`` steps, in the same
transaction (server.services.chains).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from taskpost.protocol import (
    CompletionAck,
    HeartbeatResponse,
    JobState,
    Outcome,
    TaskCompletion,
    TaskLeaseStatus,
    TaskProgress,
)
from taskpost.protocol.tasks import RELEASE_DECLINED
from taskpost.server.coordinator import Coordinator, WorkerRoute
from taskpost.server.errors import JobNotFound, StaleLease
from taskpost.server.services import attempt_outputs, chains, declines, events, workers
from taskpost.server.services.convert import require_datetime
from taskpost.server.services.jobs import JOBS
from taskpost.server.services.transitions import (
    ATTEMPT_COLUMNS,
    ATTEMPT_OVER,
    WAITING_AGAIN,
    AttemptFailure,
    after_failure,
)

_LEASE_COLUMNS = (
    *ATTEMPT_COLUMNS,
    JOBS.c.state,
    JOBS.c.last_lease_token,
    JOBS.c.inputs,
    JOBS.c.outputs,
    JOBS.c.type,
    JOBS.c.attempt_started_at,
    JOBS.c.progress,
    JOBS.c.progress_message,
    JOBS.c.namespace,
    JOBS.c.priority,
    JOBS.c.then_steps,
    JOBS.c.children,
)


_LEASE_ROWS = select(*_LEASE_COLUMNS).where(JOBS.c.id.in_(bindparam("job_ids", expanding=True)))
# In id order, as every writer that locks several jobs does, so that two never deadlock.
_LOCKED_LEASE_ROWS = _LEASE_ROWS.order_by(JOBS.c.id).with_for_update()


async def _lease_rows(conn: AsyncConnection, coord: Coordinator, job_ids: Sequence[str]) -> dict[str, Any]:
    query = _LOCKED_LEASE_ROWS if coord.db.dialect.locks_rows else _LEASE_ROWS
    return {row.id: row for row in await conn.execute(query, {"job_ids": sorted(set(job_ids))})}


def _holds_lease(row: Any, token: str) -> bool:
    return row is not None and row.state == JobState.PROCESSING.value and row.lease_token == token


@dataclass
class AppliedCompletions:
    """What a transaction applying completions did, to announce once it has committed."""

    acks: list[CompletionAck] = field(default_factory=list)
    counted: list[Callable[[], None]] = field(default_factory=list)
    spawned: list[chains.Spawned] = field(default_factory=list)
    logged: bool = False


async def complete(
    coord: Coordinator, worker_id: str, completions: list[TaskCompletion]
) -> list[CompletionAck]:
    """Apply the end of attempts; stale ones are refused (and recorded, for this agent's jobs)."""
    async with coord.db.write() as conn:
        applied = await apply_completions(conn, coord, worker_id, completions, coord.clock())
    return announce_completions(coord, applied)


async def apply_completions(
    conn: AsyncConnection, coord: Coordinator, worker_id: str, completions: list[TaskCompletion], now: float
) -> AppliedCompletions:
    """``complete`` inside the caller's write transaction (a claim carrying completions shares
    one); call ``announce_completions`` once it has committed."""
    applied = AppliedCompletions()
    acks = applied.acks
    succeeded: list[dict[str, Any]] = []
    other_updates: list[tuple[str, str, dict[str, Any]]] = []
    log: list[events.Event] = []
    changes: list[events.Event] = []  # state events, after the incidents of the same jobs
    counted = applied.counted  # metrics of the transaction, counted once committed
    rows = await _lease_rows(conn, coord, [c.job_id for c in completions])
    stale_ids = {c.job_id for c in completions if c.job_id in rows and _is_stale(rows[c.job_id], c)}
    ran_here = await events.jobs_with_worker(conn, stale_ids, worker_id) if stale_ids else set()
    for completion in completions:
        row: Any = rows.get(completion.job_id)
        if row is None:
            acks.append(
                CompletionAck(
                    job_id=completion.job_id,
                    accepted=False,
                    code="job_not_found",
                    message="no job has this id",
                )
            )
            continue
        if _is_stale(row, completion):
            # Any worker key may send any job id: only an agent that ran the job gets its
            # refusal recorded, so that no key can write events on other agents' jobs.
            if row.worker_id == worker_id or row.id in ran_here:
                log.append(
                    events.Event(
                        row.id,
                        "stale_completion_refused",
                        row.attempts,
                        worker_id,
                        f"outcome {completion.outcome.value}",
                    )
                )
            counted.append(coord.metrics.stale_completion_refused)
            acks.append(
                CompletionAck(
                    job_id=row.id,
                    accepted=False,
                    state=row.state,
                    code=StaleLease.code,
                    message="the lease was lost; this completion was not applied",
                )
            )
            continue
        if row.state != JobState.PROCESSING.value or row.lease_token != completion.lease_token:
            # A resend of a completion already applied (succeeded, cancelled or failed).
            acks.append(CompletionAck(job_id=row.id, accepted=True, state=row.state))
            continue
        state, values = _completion_values(row, completion, now)
        if state is JobState.COMPLETED:
            succeeded.append(
                {"b_id": row.id, "b_token": completion.lease_token, "b_result": completion.result}
            )
            started = row.attempt_started_at  # nullable in the table, though every claim sets it
            run_s = None if started is None else now - started
            counted.append(partial(coord.metrics.completed, row.type, run_s))
            changes.append(events.state_event(row.id, state, row.attempts, worker_id, run_s=run_s))
        else:
            if state is not JobState.CANCELLED:
                values["last_lease_token"] = completion.lease_token
            other_updates.append((row.id, completion.lease_token, values))
            if completion.outcome is Outcome.FAILED:
                kind = values["error"]["kind"]
                counted.append(partial(coord.metrics.failed_attempt_went, row.type, kind, state.value))
            log.append(
                events.Event(
                    row.id,
                    f"attempt_{completion.outcome.value}",
                    row.attempts,
                    worker_id,
                    completion.error_message,
                )
            )
            changes.append(events.state_event(row.id, state, row.attempts, worker_id))
        acks.append(CompletionAck(job_id=row.id, accepted=True, state=state.value))
    outputs: dict[str, list[dict[str, Any]]] = {}
    if succeeded:
        await conn.execute(_COMPLETE_STATEMENT.values(ended_at=now), succeeded)
        outputs = await attempt_outputs.promote(
            conn, [(s["b_id"], s["b_token"], rows[s["b_id"]].outputs) for s in succeeded]
        )
    for job_id, token, values in other_updates:
        await conn.execute(
            update(JOBS).where(JOBS.c.id == job_id, JOBS.c.lease_token == token).values(**values)
        )
    await attempt_outputs.drop(conn, [job_id for job_id, _, _ in other_updates])
    await events.record(conn, [*log, *changes], now)
    parents = [_as_parent(rows[job_id], job_outputs) for job_id, job_outputs in outputs.items()]
    applied.spawned = await chains.spawn(conn, coord, [p for p in parents if p is not None], now)
    applied.logged = bool(log or changes)
    return applied


def announce_completions(coord: Coordinator, applied: AppliedCompletions) -> list[CompletionAck]:
    """After the commit: count the metrics, wake whoever waits on what changed; the acks."""
    acks = applied.acks
    for count in applied.counted:
        count()
    chains.announce(coord, applied.spawned)
    if applied.logged:
        coord.events.notify()
    if any(ack.accepted for ack in acks):
        coord.job_changes.notify()
    if any(ack.accepted and ack.state == JobState.QUEUED.value for ack in acks):
        coord.notifier.notify()  # a requeued job is work for a held claim
    return acks


def _as_parent(row: Any, outputs: list[dict[str, Any]]) -> chains.Parent | None:
    """The completed job of ``row`` as the parent of its steps; None without steps to create
    (or with children already, which only a job that completed before has)."""
    if not row.then_steps or row.children is not None:
        return None
    return chains.Parent(
        row.id, row.namespace, row.priority, row.attempts, row.then_steps, outputs, bool(row.cancel_requested)
    )


def _is_stale(row: Any, completion: TaskCompletion) -> bool:
    """Neither the live lease nor the one whose failure the agent already reported."""
    return completion.lease_token not in (row.lease_token, row.last_lease_token)


_COMPLETE_STATEMENT = (
    update(JOBS)
    .where(
        JOBS.c.id == bindparam("b_id"),
        JOBS.c.lease_token == bindparam("b_token"),
        JOBS.c.state == JobState.PROCESSING.value,
    )
    .values(
        state=JobState.COMPLETED.value,
        result=bindparam("b_result", type_=JOBS.c.result.type),
        progress=1.0,
        progress_message=None,
        lease_expires_at=None,
        error=None,
    )
)


def _completion_values(row: Any, completion: TaskCompletion, now: float) -> tuple[JobState, dict[str, Any]]:
    if completion.outcome is Outcome.SUCCEEDED:
        return JobState.COMPLETED, {}
    if completion.outcome is Outcome.CANCELLED:
        return JobState.CANCELLED, {
            "state": JobState.CANCELLED.value,
            "ended_at": now,
            "lease_expires_at": None,
            "progress_message": None,
        }
    failure = AttemptFailure(
        message=completion.error_message or "the handler failed",
        kind=completion.error_kind or "error",
        retryable=completion.retryable,
        retry_delay_s=completion.retry_delay_s,
        traceback=completion.traceback,
    )
    values = after_failure(row, failure, now)
    return JobState(values["state"]), values


async def heartbeat(coord: Coordinator, route: WorkerRoute, tasks: list[TaskProgress]) -> HeartbeatResponse:
    """Extend the leases the agent still holds and tell it which tasks to stop."""
    now = coord.clock()
    expires = now + coord.settings.lease_s
    statuses: list[TaskLeaseStatus] = []
    log: list[events.Event] = []
    async with coord.db.write() as conn:
        await workers.touch(conn, coord, route, now, force=True)
        if tasks:
            rows = await _lease_rows(conn, coord, [t.job_id for t in tasks])
            extended: list[dict[str, Any]] = []
            for task in tasks:
                row: Any = rows.get(task.job_id)
                if not _holds_lease(row, task.lease_token):
                    statuses.append(TaskLeaseStatus(job_id=task.job_id, lease_valid=False))
                    continue
                extended.append(
                    {
                        "b_id": task.job_id,
                        "b_token": task.lease_token,
                        "b_progress": task.progress,
                        "b_message": task.message,
                    }
                )
                if (task.progress, task.message) != (row.progress, row.progress_message):
                    data = {"progress": task.progress, "message": task.message}
                    log.append(events.Event(row.id, "progress", row.attempts, route.worker_id, data=data))
                if task.partial:
                    log.extend(await _new_partial(conn, row, task, route.worker_id))
                statuses.append(
                    TaskLeaseStatus(
                        job_id=task.job_id,
                        lease_valid=True,
                        cancel_requested=bool(row.cancel_requested),
                        lease_expires_at=require_datetime(expires),
                    )
                )
            if extended:
                await conn.execute(_HEARTBEAT_STATEMENT.values(lease_expires_at=expires), extended)
            await events.record(conn, log, now)
    if log:
        coord.events.notify()
    return HeartbeatResponse(tasks=statuses, drain=route.draining)


async def _new_partial(
    conn: AsyncConnection, row: Any, task: TaskProgress, worker_id: str
) -> list[events.Event]:
    """The chunks of ``task.partial`` this attempt has not stored yet (a heartbeat whose answer
    was lost is sent again with the same chunks), as ``partial`` events."""
    stored = (
        await conn.execute(
            select(func.count())
            .select_from(events.EVENTS)
            .where(
                events.EVENTS.c.job_id == row.id,
                events.EVENTS.c.attempt == row.attempts,
                events.EVENTS.c.kind == "partial",
            )
        )
    ).scalar_one()
    return [
        events.Event(row.id, "partial", row.attempts, worker_id, data={"index": index, "chunk": chunk})
        for index, chunk in enumerate(task.partial, start=task.partial_from)
        if index >= stored
    ]


_HEARTBEAT_STATEMENT = (
    update(JOBS)
    .where(
        JOBS.c.id == bindparam("b_id"),
        JOBS.c.lease_token == bindparam("b_token"),
        JOBS.c.state == JobState.PROCESSING.value,
    )
    .values(progress=bindparam("b_progress"), progress_message=bindparam("b_message"))
)


async def release(
    coord: Coordinator, worker_id: str, tasks: list[TaskProgress], reason: str
) -> list[CompletionAck]:
    """Put unfinished tasks back in the queue at once, giving back the attempt they used.

    With the reason ``declined`` the agent is not handed them again (server.services.declines).
    """
    now = coord.clock()
    acks: list[CompletionAck] = []
    dead_types: list[str] = []
    async with coord.db.write() as conn:
        rows = await _lease_rows(conn, coord, [t.job_id for t in tasks])
        for task in tasks:
            row: Any = rows.get(task.job_id)
            if not _holds_lease(row, task.lease_token):
                acks.append(CompletionAck(job_id=task.job_id, accepted=False, code=StaleLease.code))
                continue
            state = JobState.CANCELLED if row.cancel_requested else JobState.QUEUED
            values: dict[str, Any] = {"state": state.value, **ATTEMPT_OVER}
            event = events.Event(row.id, "released", row.attempts, worker_id, reason)
            if state is JobState.QUEUED:
                values.update(attempts=max(row.attempts - 1, 0), **WAITING_AGAIN)
                if reason == RELEASE_DECLINED:
                    declined = await declines.decline(conn, coord, row.id, worker_id, now)
                    state = declined.state
                    values.update(declined.values)
                    event = events.Event(row.id, RELEASE_DECLINED, row.attempts, worker_id, declined.detail)
                    if state is JobState.DEAD:
                        dead_types.append(row.type)
            else:
                values.update(ended_at=now)
            await conn.execute(update(JOBS).where(JOBS.c.id == row.id).values(**values))
            await attempt_outputs.drop(conn, [row.id])
            await events.record(
                conn, [event, events.state_event(row.id, state, row.attempts, worker_id)], now
            )
            acks.append(CompletionAck(job_id=row.id, accepted=True, state=state.value))
    for job_type in dead_types:
        coord.metrics.dead(job_type)
    coord.notifier.notify()
    coord.job_changes.notify()
    coord.events.notify()
    return acks


async def require_lease(coord: Coordinator, job_id: str, token: str | None) -> Any:
    """The job row, if ``token`` is its live lease; StaleLease otherwise."""
    async with coord.db.read() as conn:
        return await check_lease(conn, coord, job_id, token)


async def check_lease(conn: AsyncConnection, coord: Coordinator, job_id: str, token: str | None) -> Any:
    """``require_lease`` inside the caller's transaction (which then holds the row)."""
    rows = await _lease_rows(conn, coord, [job_id])
    row: Any = rows.get(job_id)
    if row is None:
        raise JobNotFound(f"no job has id {job_id!r}", job_id=job_id)
    if not token or not _holds_lease(row, token):
        raise StaleLease(f"the lease token is not the live lease of job {job_id}", job_id=job_id)
    return row
