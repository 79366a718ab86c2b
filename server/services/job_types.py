"""Job types: the built-in ones, and those agents declared recently.

Agents declare the types they run when they register; a submit of a type nobody declared is
refused (a typo would otherwise wait in the queue forever). A declared type stays known for
``job_type_retention_s`` after the last agent declaring it was seen, so that agents cannot grow
the list for good.

Agents also declare the JSON Schema of each type's params (``WorkerRegister.param_schemas``):
stored per type and handler version, the newest declared is the type's current schema, which
submits are checked against (server.services.param_checks) and ``GET /api/v1/types`` shows.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from taskpost.protocol import TASK_TYPE_PATTERN, HandlerSchema, JobTypeInfo
from taskpost.server.coordinator import BUILTIN_JOB_TYPES, Coordinator, ParamSchema
from taskpost.server.db.models import JobTypeSchema, KnownJobType, Worker
from taskpost.server.errors import InvalidParams, UnknownJobType
from taskpost.server.services.convert import require_datetime

JOB_TYPES = KnownJobType.__table__  # type: ignore[attr-defined]
SCHEMAS = JobTypeSchema.__table__  # type: ignore[attr-defined]
WORKERS = Worker.__table__  # type: ignore[attr-defined]

SCHEMA_REREAD_S = 10.0
"""How long this process uses a type's schema before reading it again: an agent may declare a
newer one through another replica."""


def check_declared(types: Iterable[str]) -> None:
    """Refuse a type an agent may not declare: only identifiers become job types."""
    for name in types:
        if not re.fullmatch(TASK_TYPE_PATTERN, name):
            raise InvalidParams(
                f"invalid task type {name!r}: it must match {TASK_TYPE_PATTERN}", field="task_types"
            )


async def record_seen(conn: AsyncConnection, coord: Coordinator, types: Iterable[str], now: float) -> None:
    """Note that an agent declaring ``types`` is alive at ``now``."""
    names = sorted(set(types))
    if not names:
        return
    await conn.execute(update(JOB_TYPES).where(JOB_TYPES.c.name.in_(names)).values(last_seen_at=now))
    known = set((await conn.execute(select(JOB_TYPES.c.name).where(JOB_TYPES.c.name.in_(names)))).scalars())
    new = [{"name": name, "first_seen_at": now, "last_seen_at": now} for name in names if name not in known]
    if new:
        # Another coordinator (or request) may insert the same type first: theirs stands.
        await conn.execute(coord.db.dialect.insert_ignoring_duplicates(JOB_TYPES), new)
    for name in names:
        coord.job_types_seen[name] = now


def seen_since(coord: Coordinator, types: Iterable[str], since: float) -> bool:
    """Whether an agent declared each of ``types`` at ``since`` or later, as this process last
    read or wrote the job_types table (times there only grow, so a fresh one here is true)."""
    return all(coord.job_types_seen.get(name, float("-inf")) >= since for name in types)


def _known(coord: Coordinator, now: float) -> set[str]:
    since = now - coord.settings.job_type_retention_s
    return set(BUILTIN_JOB_TYPES) | {name for name, at in coord.job_types_seen.items() if at >= since}


async def _reload(coord: Coordinator) -> None:
    seen_at = func.coalesce(JOB_TYPES.c.last_seen_at, JOB_TYPES.c.first_seen_at)
    async with coord.db.read() as conn:
        rows = (await conn.execute(select(JOB_TYPES.c.name, seen_at))).all()
    for name, at in rows:
        coord.job_types_seen[name] = max(at, coord.job_types_seen.get(name, at))


async def known_types(coord: Coordinator) -> list[str]:
    await _reload(coord)
    return sorted(_known(coord, coord.clock()))


async def ensure_known(coord: Coordinator, types: set[str]) -> None:
    """Refuse job types that no agent declared lately, built-in ones aside.

    The table is re-read when a type was not declared lately as far as this process knows (an
    agent may have registered through another replica), which also keeps ``unserved_warning``
    true for the types of this submit."""
    now = coord.clock()
    if seen_since(coord, types, now - coord.settings.job_type_retention_s):
        return
    await _reload(coord)
    known = _known(coord, now)
    missing = types - known
    if missing:
        listed = sorted(known)
        raise UnknownJobType(
            f"unknown job type {sorted(missing)[0]!r}; known types: {', '.join(listed)}",
            known_types=listed,
        )


def unserved_warning(coord: Coordinator, job_type: str) -> str | None:
    """A note when no agent declared ``job_type`` lately: the job waits until one does.

    Right after ``ensure_known`` (a submit) it reflects the table, whichever replica the agents
    registered through."""
    if seen_since(coord, [job_type], coord.clock() - coord.settings.job_type_retention_s):
        return None
    extra = BUILTIN_JOB_TYPES.get(job_type)
    hint = f" (agents need: pip install 'taskpost[{extra}]')" if extra else ""
    return f"no registered agent runs {job_type!r} yet; the job waits in the queue until one does{hint}"


async def record_schemas(
    conn: AsyncConnection, coord: Coordinator, schemas: Mapping[str, HandlerSchema], now: float
) -> None:
    """Store the parameter schemas an agent declared; the newest declared per type is current."""
    for job_type, declared in sorted(schemas.items()):
        values = {"params_schema": declared.params_schema, "registered_at": now}
        where = (SCHEMAS.c.type == job_type, SCHEMAS.c.version == declared.version)
        updated = await conn.execute(update(SCHEMAS).where(*where).values(**values))
        if updated.rowcount == 0:
            # Another replica may insert the same handler version meanwhile: theirs stands.
            row = {"type": job_type, "version": declared.version, **values}
            await conn.execute(coord.db.dialect.insert_ignoring_duplicates(SCHEMAS), [row])
        coord.param_schemas[job_type] = ParamSchema(declared.version, declared.params_schema, read_at=now)


async def current_schema(
    coord: Coordinator, job_type: str, *, max_age_s: float = SCHEMA_REREAD_S
) -> ParamSchema:
    """The schema submits of ``job_type`` are checked against, read again when older than
    ``max_age_s``; its ``params_schema`` is None when no agent declared one."""
    now = coord.clock()
    cached = coord.param_schemas.get(job_type)
    if cached is not None and now - cached.read_at < max_age_s:
        return cached
    query = (
        select(SCHEMAS.c.version, SCHEMAS.c.params_schema)
        .where(SCHEMAS.c.type == job_type)
        .order_by(SCHEMAS.c.registered_at.desc(), SCHEMAS.c.version.desc())
        .limit(1)
    )
    async with coord.db.read() as conn:
        row = (await conn.execute(query)).first()
    version, schema = (row.version, row.params_schema) if row is not None else (None, None)
    if cached is not None and (cached.version, cached.params_schema) == (version, schema):
        cached.read_at = now  # the same schema: keep its compiled validator
        return cached
    current = coord.param_schemas[job_type] = ParamSchema(version, schema, read_at=now)
    return current


async def handler_versions(coord: Coordinator, types: Iterable[str]) -> dict[str, str]:
    """The current handler version of each type ("" when none declared a schema)."""
    return {
        job_type: (await current_schema(coord, job_type)).version or "" for job_type in sorted(set(types))
    }


async def list_types(coord: Coordinator) -> list[JobTypeInfo]:
    """Every known type: its current schema, the live agents that serve it, when one was last seen."""
    names = await known_types(coord)
    now = coord.clock()
    agents_query = select(WORKERS.c.task_types, WORKERS.c.draining).where(
        WORKERS.c.deregistered_at.is_(None), WORKERS.c.last_seen_at > now - coord.settings.worker_gone_s
    )
    schemas_query = select(SCHEMAS.c.type, SCHEMAS.c.version, SCHEMAS.c.params_schema).order_by(
        SCHEMAS.c.registered_at, SCHEMAS.c.version
    )
    async with coord.db.read() as conn:
        agents = (await conn.execute(agents_query)).all()
        newest = {row.type: row for row in await conn.execute(schemas_query)}  # the last one wins
    types = []
    for name in names:
        serving = [agent for agent in agents if name in agent.task_types]
        schema = newest.get(name)
        seen = coord.job_types_seen.get(name)
        types.append(
            JobTypeInfo(
                name=name,
                version=schema.version if schema is not None else None,
                params_schema=schema.params_schema if schema is not None else None,
                agents=len(serving),
                online=any(not agent.draining for agent in serving),
                last_seen_at=require_datetime(seen) if seen is not None else None,
            )
        )
    return types
