"""Coordinator liveness: the replicas running on this database, and leases after a time with none.

Every coordinator process adds its row to ``coordinator_replicas`` when it starts, and its
reaper loop moves the row's ``last_seen_at`` on every pass. Agents heartbeat through any replica,
so a running lease only lost time while no replica at all was alive. A starting replica reads
the latest ``last_seen_at`` of any replica:

- recent (``alive_window_s``): another replica is running and agents could heartbeat there:
  leases are left alone; one whose agent died meanwhile expires as it should;
- older: no coordinator ran since that moment, so each lease still valid then gets that time
  back (its expiry moves by the downtime);
- no row at all (the first start, or a database from before this table): how long it was down
  is not known, so each running task gets one lease length from now.
"""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from taskpost.protocol import JobState
from taskpost.server.coordinator import Coordinator
from taskpost.server.db.models import CoordinatorReplica
from taskpost.server.services.jobs import JOBS

logger = logging.getLogger(__name__)

REPLICAS = CoordinatorReplica.__table__  # type: ignore[attr-defined]

_MISSED_PASSES = 3
_SLACK_S = 5.0
_FORGET_AFTER_S = 7 * 86400.0
"""Rows of replicas silent this long are deleted by the live ones."""


def alive_window_s(reaper_interval_s: float) -> float:
    """A replica whose ``last_seen_at`` is this recent counts as running: it writes it once per
    reaper pass, and a pass may run late (a slow database, a busy process)."""
    return _MISSED_PASSES * reaper_interval_s + _SLACK_S


@dataclass(frozen=True)
class Restart:
    """What a starting replica did to running leases."""

    extended: int
    """Running tasks whose lease was extended."""
    downtime_s: float | None
    """How long no replica was running (0: another one is); None when not known."""


async def join(coord: Coordinator) -> Restart:
    """Add this replica, and give running leases the time during which no replica was alive."""
    now = coord.clock()
    async with coord.db.write() as conn:
        last = (
            await conn.execute(
                select(REPLICAS.c.id, REPLICAS.c.last_seen_at)
                .order_by(REPLICAS.c.last_seen_at.desc(), REPLICAS.c.id)
                .limit(1)
            )
        ).first()
        await _insert_self(conn, coord, now)
        if last is None:
            return Restart(await _one_lease_from_now(conn, coord, now), None)
        if now - last.last_seen_at <= alive_window_s(coord.settings.reaper_interval_s):
            return Restart(0, 0.0)
        # Replicas starting together after an outage all see the same last one: the first to
        # mark it gives the leases their time back, once (a conditional update, so on
        # PostgreSQL the others wait for that mark and then find it set).
        marked = await conn.execute(
            update(REPLICAS)
            .where(REPLICAS.c.id == last.id, REPLICAS.c.succeeded_by.is_(None))
            .values(succeeded_by=coord.replica_id)
        )
        if not marked.rowcount:
            return Restart(0, 0.0)
        downtime_s = now - last.last_seen_at
        extended = await conn.execute(
            update(JOBS)
            .where(
                JOBS.c.state == JobState.PROCESSING.value,
                JOBS.c.lease_expires_at >= last.last_seen_at,
            )
            .values(lease_expires_at=JOBS.c.lease_expires_at + downtime_s)
        )
    return Restart(extended.rowcount, downtime_s)


async def beat(coord: Coordinator) -> None:
    """Record that this replica is alive (the reaper loop calls it every pass)."""
    now = coord.clock()
    async with coord.db.write() as conn:
        moved = await conn.execute(
            update(REPLICAS).where(REPLICAS.c.id == coord.replica_id).values(last_seen_at=now)
        )
        if not moved.rowcount:  # forgotten while this process stalled for days: back again
            await _insert_self(conn, coord, now)
        await conn.execute(delete(REPLICAS).where(REPLICAS.c.last_seen_at < now - _FORGET_AFTER_S))


async def _insert_self(conn: AsyncConnection, coord: Coordinator, now: float) -> None:
    await conn.execute(
        insert(REPLICAS).values(
            id=coord.replica_id,
            host=socket.gethostname()[:255],
            pid=os.getpid(),
            started_at=now,
            last_seen_at=now,
        )
    )


async def _one_lease_from_now(conn: AsyncConnection, coord: Coordinator, now: float) -> int:
    expires = now + coord.settings.lease_s
    result = await conn.execute(
        update(JOBS)
        .where(JOBS.c.state == JobState.PROCESSING.value, JOBS.c.lease_expires_at < expires)
        .values(lease_expires_at=expires)
    )
    return result.rowcount


def log_restart(restart: Restart) -> None:
    if not restart.extended:
        return
    if restart.downtime_s is None:
        message = "gave %d running tasks a fresh lease (how long no coordinator ran is not known)"
        args: tuple[object, ...] = (restart.extended,)
    else:
        message = "gave %d running tasks back the %.1f s during which no coordinator ran"
        args = (restart.extended, restart.downtime_s)
    logger.info(
        message,
        *args,
        extra={"action": "restart", "tasks": restart.extended, "downtime_s": restart.downtime_s},
    )
