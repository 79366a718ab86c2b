"""Claims: lease queued jobs to an agent, holding the request (long poll) while nothing is queued.

Each claimed task is decoded and serialised inside the claim's transaction. A row that cannot
be (text stored by an earlier version that is not valid UTF-8, or JSON that does not parse) is
set dead with the error kind ``corrupt_row`` in that same transaction, and the other tasks are
handed out; any other failure rolls the whole claim back, leaving nothing leased.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncConnection

from taskpost.protocol import ClaimedTask, ClaimResponse, CompletionAck, JobState, Priority, TaskCompletion
from taskpost.server.coordinator import Coordinator, WorkerRoute
from taskpost.server.services import events, workers
from taskpost.server.services.convert import require_datetime
from taskpost.server.services.jobs import JOBS
from taskpost.server.services.leases import announce_completions, apply_completions

logger = logging.getLogger(__name__)

CORRUPT_ROW = "corrupt_row"


async def claim(
    coord: Coordinator,
    route: WorkerRoute,
    max_tasks: int,
    namespaces: tuple[str, ...] = (),
    task_types: tuple[str, ...] = (),
) -> list[ClaimedTask]:
    """Lease up to ``max_tasks`` queued jobs this agent may run, best priority first.

    ``namespaces`` and ``task_types``: those the agent's key may claim (empty: all), as read from
    the key on this request; the types are intersected with the agent's, which this process may
    have cached.
    """
    types = _claimable_types(route, task_types)
    if max_tasks <= 0 or not types:
        if route.reread:  # nothing to claim, but the reply says whether the agent drains
            async with coord.db.read() as conn:
                await workers.reread(conn, route)
        return []
    if route.draining:
        return []
    while True:
        tasks, corrupt = await _claim_once(coord, route, max_tasks, namespaces, types)
        # Rows set dead as corrupt are out of the queue now: try again rather than hold an
        # empty claim while healthy jobs wait.
        if tasks or not corrupt:
            return _announce_claim(coord, tasks, corrupt)


def _claimable_types(route: WorkerRoute, task_types: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(t for t in route.task_types if t in task_types) if task_types else route.task_types


def _announce_claim(coord: Coordinator, tasks: list[ClaimedTask], corrupt: int) -> list[ClaimedTask]:
    """After the commit: wake whoever waits on job changes; the tasks, best priority first."""
    tasks.sort(key=lambda task: -task.priority.rank)
    if tasks or corrupt:
        coord.job_changes.notify()
        coord.events.notify()
    return tasks


@dataclass
class _Claimed:
    rows: Sequence[Any] = ()
    tasks: list[ClaimedTask] = field(default_factory=list)
    handed_out: set[str] = field(default_factory=set)
    corrupt: int = 0


async def _claim_once(
    coord: Coordinator,
    route: WorkerRoute,
    max_tasks: int,
    namespaces: tuple[str, ...],
    types: tuple[str, ...],
) -> tuple[list[ClaimedTask], int]:
    now = coord.clock()
    async with coord.db.write() as conn:
        claimed = await _claim_in(conn, coord, route, max_tasks, namespaces, types, now)
    _count_claim(coord, claimed.rows, claimed.handed_out, now)
    return claimed.tasks, claimed.corrupt


async def _claim_in(
    conn: AsyncConnection,
    coord: Coordinator,
    route: WorkerRoute,
    max_tasks: int,
    namespaces: tuple[str, ...],
    types: tuple[str, ...],
    now: float,
) -> _Claimed:
    """The claim inside the caller's write transaction; ``_count_claim`` once it committed."""
    lease_expires_at = now + coord.settings.lease_s
    params: dict[str, Any] = {
        "worker_id": route.worker_id,
        "now": now,
        "lease_expires_at": lease_expires_at,
        "limit": min(max_tasks, coord.settings.claim_batch_cap),
        "worker_type": route.worker_type,
    }
    params.update({f"type_{i}": task_type for i, task_type in enumerate(types)})
    params.update({f"namespace_{i}": name for i, name in enumerate(namespaces)})
    if route.labels:
        params["worker_labels"] = json.dumps(list(route.labels))
    statement = coord.db.dialect.claim_statement(
        type_count=len(types), with_labels=bool(route.labels), namespace_count=len(namespaces)
    )
    if route.reread:
        await workers.reread(conn, route)
        if route.draining or route.gone:
            return _Claimed()
    rows = (await conn.execute(statement, params)).all()
    tasks: list[ClaimedTask] = []
    corrupt = 0
    for row in rows:
        task = _sendable_task(row, lease_expires_at)
        if task is None:
            await _set_corrupt_row_dead(conn, row, route.worker_id, now)
            corrupt += 1
        else:
            tasks.append(task)
    handed_out = {task.job_id for task in tasks}
    started = [
        events.state_event(
            row.id, JobState.PROCESSING, row.attempts, route.worker_id, waited_s=_waited_s(row, now)
        )
        for row in rows
        if row.id in handed_out
    ]
    await events.record(conn, started, now)
    await workers.touch(conn, coord, route, now)
    return _Claimed(rows, tasks, handed_out, corrupt)


def _waited_s(row: Any, now: float) -> float | None:
    """Seconds from submit to this claim, known at a job's first attempt only (the claim clears
    ``available_at``, so a retry's wait is not known)."""
    return now - row.created_at if row.attempts == 1 else None


def _count_claim(coord: Coordinator, rows: Sequence[Any], handed_out: set[str], now: float) -> None:
    """Metrics of a committed claim: the attempts handed out, and the rows set dead as corrupt."""
    for row in rows:
        if row.id in handed_out:
            coord.metrics.claimed(row.type, _waited_s(row, now))
        else:
            coord.metrics.dead(row.type)


def _sendable_task(row: Any, lease_expires_at: float) -> ClaimedTask | None:
    """The task, if its stored values decode and encode; None for a corrupt row."""
    try:
        inputs = json.loads(row.inputs)
        task = ClaimedTask(
            job_id=row.id,
            type=row.type,
            params=json.loads(row.params),
            meta=json.loads(row.meta),
            priority=Priority.from_rank(row.priority),
            attempt=row.attempts,
            max_attempts=row.max_attempts,
            timeout_s=row.timeout_s,
            lease_token=row.lease_token,
            lease_expires_at=require_datetime(lease_expires_at),
            inputs=[{"name": f["name"], "size": f["size"], "sha256": f["sha256"]} for f in inputs],
        )
        task.model_dump_json()
    except (ValueError, TypeError, KeyError) as exc:
        # json.JSONDecodeError, pydantic's errors (ValidationError, PydanticSerializationError)
        # and UnicodeError are all ValueErrors.
        logger.error(
            "job %s cannot be handed out (%s): set dead",
            row.id,
            type(exc).__name__,
            extra={"job_id": row.id, "action": CORRUPT_ROW},
        )
        return None
    return task


async def _set_corrupt_row_dead(conn: AsyncConnection, row: Any, worker_id: str, now: float) -> None:
    error = {
        "message": "the job's stored parameters cannot be read or sent (text that is not valid UTF-8,"
        " or JSON that does not parse), so no agent can run it",
        "kind": CORRUPT_ROW,
        "retryable": False,
        "traceback": None,
    }
    await conn.execute(
        update(JOBS)
        .where(JOBS.c.id == row.id)
        .values(
            state=JobState.DEAD.value,
            ended_at=now,
            error=error,
            lease_token=None,
            lease_expires_at=None,
            worker_id=None,
        )
    )
    await events.record(
        conn,
        [
            events.Event(row.id, CORRUPT_ROW, row.attempts, worker_id, "-> dead; not handed out"),
            events.state_event(row.id, JobState.DEAD, row.attempts, worker_id),
        ],
        now,
    )


async def claim_with_wait(
    coord: Coordinator,
    route: WorkerRoute,
    max_tasks: int,
    wait_s: float | None,
    namespaces: tuple[str, ...] = (),
    task_types: tuple[str, ...] = (),
) -> list[ClaimedTask]:
    """Claim, holding the request (long poll) until work arrives or the hold runs out.

    Once the coordinator is stopping (its notifier closed) nothing more is handed out: the
    claim answers at once with no tasks, so the server can stop without cutting requests off.
    """
    hold = coord.settings.long_poll_s if wait_s is None else min(wait_s, coord.settings.long_poll_s)
    deadline = time.monotonic() + hold
    held = False
    while True:
        if coord.notifier.closed:
            return []
        seen = coord.notifier.version
        tasks = await claim(coord, route, max_tasks, namespaces, task_types)
        if route.gone and not held:
            raise workers.gone_error(route.worker_id)
        remaining = deadline - time.monotonic()
        if tasks or remaining <= 0 or max_tasks <= 0 or route.draining or route.gone:
            return tasks
        logger.debug(
            "holding a claim for up to %.1f s",
            remaining,
            extra={"worker_id": route.worker_id, "action": "long_poll"},
        )
        await coord.notifier.wait(seen, remaining)
        held = True
        # Another replica may have drained or deregistered the agent meanwhile.
        route.reread = True


async def claim_request(
    coord: Coordinator,
    route: WorkerRoute,
    max_tasks: int,
    wait_s: float | None,
    completions: list[TaskCompletion],
    namespaces: tuple[str, ...] = (),
    task_types: tuple[str, ...] = (),
) -> ClaimResponse:
    if not completions:
        tasks = await claim_with_wait(coord, route, max_tasks, wait_s, namespaces, task_types)
        return ClaimResponse(tasks=tasks, acks=[], drain=route.draining)
    acks, tasks, corrupt = await _complete_then_claim(
        coord, route, max_tasks, completions, namespaces, task_types
    )
    if corrupt and not tasks:
        # Every row claimed was set dead as corrupt: claim again, without holding (an agent
        # that just reported results should not sit in a long poll with nothing to show).
        tasks = await claim_with_wait(coord, route, max_tasks, 0, namespaces, task_types)
    return ClaimResponse(tasks=tasks, acks=acks, drain=route.draining)


async def _complete_then_claim(
    coord: Coordinator,
    route: WorkerRoute,
    max_tasks: int,
    completions: list[TaskCompletion],
    namespaces: tuple[str, ...],
    task_types: tuple[str, ...],
) -> tuple[list[CompletionAck], list[ClaimedTask], int]:
    """Apply the completions and claim again in one write transaction: one commit, one turn of
    the write lock, instead of two for each round trip of a busy agent."""
    types = _claimable_types(route, task_types)
    may_claim = max_tasks > 0 and bool(types) and not route.draining and not coord.notifier.closed
    now = coord.clock()
    claimed = _Claimed()
    async with coord.db.write() as conn:
        applied = await apply_completions(conn, coord, route.worker_id, completions, now)
        if may_claim:
            claimed = await _claim_in(conn, coord, route, max_tasks, namespaces, types, now)
        elif route.reread:  # nothing to claim, but the reply says whether the agent drains
            await workers.reread(conn, route)
    acks = announce_completions(coord, applied)
    _count_claim(coord, claimed.rows, claimed.handed_out, now)
    if route.gone:
        raise workers.gone_error(route.worker_id)
    return acks, _announce_claim(coord, claimed.tasks, claimed.corrupt), claimed.corrupt
