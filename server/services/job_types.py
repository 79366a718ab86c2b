"""Job types: the built-in ones, and those agents declared recently.

Agents declare the types they run when they register; a submit of a type nobody declared is
refused (a typo would otherwise wait in the queue forever). A declared type stays known for
``job_type_retention_s`` after the last agent declaring it was seen, so that agents cannot grow
the list for good.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from taskpost.protocol import TASK_TYPE_PATTERN
from taskpost.server.coordinator import BUILTIN_JOB_TYPES, Coordinator
from taskpost.server.db.models import KnownJobType
from taskpost.server.errors import InvalidParams, UnknownJobType

JOB_TYPES = KnownJobType.__table__  # type: ignore[attr-defined]


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
