"""Agent registry: register, look up, drain, deregister, list."""

from __future__ import annotations

import json
import uuid
from typing import Any

from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from taskpost.protocol import (
    Cadence,
    JobState,
    Role,
    WorkerPublic,
    WorkerRegister,
    WorkerRegistered,
    WorkerType,
)
from taskpost.server.coordinator import Coordinator, WorkerFacts, WorkerRoute
from taskpost.server.db.models import Worker
from taskpost.server.errors import Forbidden, TaskTypeForbidden, WorkerNotFound
from taskpost.server.services import job_types, param_checks
from taskpost.server.services.convert import require_datetime
from taskpost.server.services.jobs import JOBS
from taskpost.server.services.keys import KEYS, namespaces_of

WORKERS = Worker.__table__  # type: ignore[attr-defined]

# Writing last_seen_at on every claim would put a write on the hot path for nothing.
_LAST_SEEN_PRECISION_S = 2.0
# The job types' last_seen_at only has to be good to a small part of their retention (days).
_TYPES_SEEN_PRECISION_S = 300.0


def cadence(coord: Coordinator) -> Cadence:
    settings = coord.settings
    return Cadence(
        heartbeat_interval_s=settings.heartbeat_interval_s,
        long_poll_s=settings.long_poll_s,
        lease_s=settings.lease_s,
        progress_interval_s=settings.progress_interval_s,
        partial_output=True,
    )


async def register(coord: Coordinator, request: WorkerRegister, key_id: str | None) -> WorkerRegistered:
    job_types.check_declared(request.task_types)
    param_checks.check_declared(request.task_types, request.param_schemas)
    now = coord.clock()
    worker_id = str(uuid.uuid4())
    task_types = sorted(set(request.task_types))
    labels = sorted(set(request.labels))
    async with coord.db.write() as conn:
        await _check_key_task_types(conn, key_id, task_types)
        await conn.execute(
            insert(WORKERS).values(
                id=worker_id,
                name=request.name,
                worker_type=request.worker_type.value,
                task_types=task_types,
                labels=labels,
                max_concurrent=request.max_concurrent,
                version=request.version,
                host=request.host,
                registered_at=now,
                last_seen_at=now,
                draining=False,
                key_id=key_id,
            )
        )
        await job_types.record_seen(conn, coord, task_types, now)
        await job_types.record_schemas(conn, coord, request.param_schemas, now)
    facts = WorkerFacts(worker_id, key_id, request.worker_type.value, tuple(task_types), tuple(labels))
    _remember(coord, facts)
    return WorkerRegistered(worker_id=worker_id, cadence=cadence(coord))


async def _check_key_task_types(conn: AsyncConnection, key_id: str | None, task_types: list[str]) -> None:
    """TaskTypeForbidden unless the key may serve every one of ``task_types``."""
    if key_id is None:
        return
    stored = (await conn.execute(select(KEYS.c.task_types).where(KEYS.c.id == key_id))).scalar()
    allowed = json.loads(stored) if stored else []
    refused = sorted(set(task_types) - set(allowed)) if allowed else []
    if refused:
        raise TaskTypeForbidden(
            f"this API key may serve only the job types {', '.join(allowed)}; it may not register"
            f" {', '.join(refused)}: drop them, or register with a key made for them",
            allowed=allowed,
            refused=refused,
        )


_ROUTE_COLUMNS = (
    WORKERS.c.id,
    WORKERS.c.key_id,
    WORKERS.c.worker_type,
    WORKERS.c.task_types,
    WORKERS.c.labels,
    WORKERS.c.draining,
    WORKERS.c.last_seen_at,
    WORKERS.c.deregistered_at,
)
_KNOWN_AGENTS_MAX = 10_000
"""Agents whose facts a process keeps; past it the oldest are read again when they call."""


async def route_for(coord: Coordinator, worker_id: str, key_id: str | None, is_admin: bool) -> WorkerRoute:
    """The agent calling; the key must be the one it registered with.

    Its facts (key, type, task types, labels) never change and are kept per process; whether it
    drains or is gone is read by the operation itself (``reread``, ``touch``). An agent this
    process has not met is read here, and refused when it is unknown or gone."""
    facts = coord.worker_facts.get(worker_id)
    if facts is None:
        async with coord.db.read() as conn:
            row = (await conn.execute(select(*_ROUTE_COLUMNS).where(WORKERS.c.id == worker_id))).first()
        if row is None or row.deregistered_at is not None:
            raise gone_error(worker_id)
        facts = WorkerFacts(row.id, row.key_id, row.worker_type, tuple(row.task_types), tuple(row.labels))
        _remember(coord, facts)
        route = WorkerRoute.of(facts)
        route.draining, route.last_seen_at, route.reread = row.draining, row.last_seen_at, False
    else:
        route = WorkerRoute.of(facts)
    if not is_admin and facts.key_id is not None and facts.key_id != key_id:
        raise Forbidden("this agent was registered with another API key")
    return route


def _remember(coord: Coordinator, facts: WorkerFacts) -> None:
    known = coord.worker_facts
    known[facts.worker_id] = facts
    while len(known) > _KNOWN_AGENTS_MAX:
        del known[next(iter(known))]


def gone_error(worker_id: str) -> WorkerNotFound:
    return WorkerNotFound(f"no registered agent has id {worker_id!r}: register again", worker_id=worker_id)


_REREAD = select(WORKERS.c.draining, WORKERS.c.deregistered_at, WORKERS.c.last_seen_at).where(
    WORKERS.c.id == bindparam("worker_id")
)


async def reread(conn: AsyncConnection, route: WorkerRoute) -> None:
    """Read whether the agent drains or is gone, inside the caller's transaction."""
    row = (await conn.execute(_REREAD, {"worker_id": route.worker_id})).first()
    route.gone = row is None or row.deregistered_at is not None
    route.draining = bool(row is not None and row.draining)
    route.last_seen_at = row.last_seen_at if row is not None else 0.0
    route.reread = False


async def touch(
    conn: AsyncConnection, coord: Coordinator, route: WorkerRoute, now: float, force: bool = False
) -> None:
    """Record that the agent is alive: at most every few seconds, or now with ``force`` (a
    heartbeat), which also reads whether it drains; WorkerNotFound once it is gone."""
    if force:
        row = (
            await conn.execute(
                update(WORKERS)
                .where(WORKERS.c.id == route.worker_id)
                .values(last_seen_at=now)
                .returning(WORKERS.c.draining, WORKERS.c.deregistered_at)
            )
        ).first()
        if row is None or row.deregistered_at is not None:
            raise gone_error(route.worker_id)
        route.draining, route.last_seen_at, route.reread = row.draining, now, False
    elif now - route.last_seen_at >= _LAST_SEEN_PRECISION_S:
        await conn.execute(update(WORKERS).where(WORKERS.c.id == route.worker_id).values(last_seen_at=now))
        route.last_seen_at = now
    if not job_types.seen_since(coord, route.task_types, now - _TYPES_SEEN_PRECISION_S):
        await job_types.record_seen(conn, coord, route.task_types, now)


async def deregister(coord: Coordinator, route: WorkerRoute) -> None:
    now = coord.clock()
    async with coord.db.write() as conn:
        await conn.execute(
            update(WORKERS)
            .where(WORKERS.c.id == route.worker_id)
            .values(deregistered_at=now, last_seen_at=now)
        )
    coord.worker_facts.pop(route.worker_id, None)


async def set_draining(coord: Coordinator, worker_id: str, draining: bool) -> WorkerPublic:
    await route_for(coord, worker_id, None, is_admin=True)
    async with coord.db.write() as conn:
        await conn.execute(update(WORKERS).where(WORKERS.c.id == worker_id).values(draining=draining))
    coord.notifier.notify()  # let a held claim, on whichever replica, return with the news
    return next(w for w in await list_workers(coord, include_gone=True) if w.id == worker_id)


async def list_workers(
    coord: Coordinator, include_gone: bool = False, namespace: str | None = None
) -> list[WorkerPublic]:
    """The agents; with ``namespace``, only those whose key serves it, counting only its tasks."""
    now = coord.clock()
    query = (
        select(
            WORKERS,
            KEYS.c.role.label("key_role"),
            KEYS.c.namespaces.label("key_namespaces"),
            KEYS.c.task_types.label("key_task_types"),
        )
        .outerjoin(KEYS, KEYS.c.id == WORKERS.c.key_id)
        .order_by(WORKERS.c.registered_at)
    )
    if not include_gone:
        query = query.where(WORKERS.c.deregistered_at.is_(None))
    running_query = select(JOBS.c.worker_id, func.count()).where(JOBS.c.state == JobState.PROCESSING.value)
    if namespace is not None:
        running_query = running_query.where(JOBS.c.namespace == namespace)
    running_query = running_query.group_by(JOBS.c.worker_id)
    async with coord.db.read() as conn:
        rows = (await conn.execute(query)).all()
        running = {worker_id: count for worker_id, count in await conn.execute(running_query)}
    if namespace is not None:
        rows = [row for row in rows if _serves(row, namespace)]
    return [_public(row, running.get(row.id, 0), now, coord.settings.worker_gone_s) for row in rows]


def _serves(row: Any, namespace: str) -> bool:
    """Whether the agent's key may claim ``namespace``'s jobs (a key restricted to none serves all)."""
    if row.key_role != Role.WORKER.value:
        return True  # registered with an admin key: it claims from every namespace
    served = namespaces_of(Role.WORKER, row.key_namespaces)
    return not served or namespace in served


def _public(row: Any, running: int, now: float, gone_after_s: float) -> WorkerPublic:
    restricted = row.key_role == Role.WORKER.value  # an admin key (or none) serves everything
    return WorkerPublic(
        id=row.id,
        name=row.name,
        worker_type=WorkerType(row.worker_type),
        task_types=list(row.task_types),
        labels=list(row.labels),
        max_concurrent=row.max_concurrent,
        version=row.version,
        host=row.host,
        registered_at=require_datetime(row.registered_at),
        last_seen_at=require_datetime(row.last_seen_at),
        running_tasks=running,
        draining=row.draining,
        alive=row.deregistered_at is None and now - row.last_seen_at < gone_after_s,
        namespaces=list(namespaces_of(Role.WORKER, row.key_namespaces)) if restricted else [],
        allowed_task_types=json.loads(row.key_task_types) if restricted else [],
    )
