"""Writes that race on PostgreSQL, where no process-wide lock puts transactions in a row.

SQLite runs one write transaction at a time, so a read followed by an update sees no change in
between; on PostgreSQL another transaction (a request of this coordinator, or of another
replica) can commit in between, and these tests make it do so.
"""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import func, select, text, update

from taskpost.protocol import API_PREFIX, JobState
from taskpost.server.services.job_types import JOB_TYPES
from taskpost.server.services.jobs import JOBS
from taskpost.server.services.workers import WORKERS
from tests.conftest import postgres_only
from tests.server.conftest import Api, eventually

pytestmark = [pytest.mark.anyio, postgres_only]


async def _waiting_on_a_lock(api: Api) -> int:
    async with api.coord.db.read() as conn:
        query = text(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        return int((await conn.execute(query)).scalar_one())


@pytest.mark.parametrize("agent_write", ["completion", "heartbeat"])
async def test_a_lease_expiry_never_overwrites_what_the_agent_committed_meanwhile(
    api: Api, agent_write: str
) -> None:
    await api.submit()
    worker = await api.register()
    [task] = await api.claim(worker)
    api.clock.advance(api.coord.settings.lease_s + 1)  # by the clock, the lease ran out
    agent_values = (
        {"state": JobState.COMPLETED.value, "lease_expires_at": None, "ended_at": api.clock()}
        if agent_write == "completion"
        else {"lease_expires_at": api.clock() + api.coord.settings.lease_s}
    )
    async with api.coord.db.write() as conn:
        # The agent's request, as leases.complete and leases.heartbeat make it: the row locked,
        # then changed under the lease token.
        await conn.execute(select(JOBS.c.id).where(JOBS.c.id == task["job_id"]).with_for_update())
        reap = asyncio.create_task(api.reap())

        async def passed_or_waiting() -> bool:
            # The reaper either passes the locked row by, or has read it and waits to update it.
            return reap.done() or await _waiting_on_a_lock(api) > 0

        await eventually(passed_or_waiting, "the reaper to pass the row by or to wait for it")
        await conn.execute(
            update(JOBS)
            .where(JOBS.c.id == task["job_id"], JOBS.c.lease_token == task["lease_token"])
            .values(**agent_values)
        )
    assert await reap == 0
    job = await api.job(task["job_id"])
    expected = "completed" if agent_write == "completion" else "processing"
    assert job["state"] == expected and job["attempts"] == 1
    assert [event["kind"] for event in await api.events(task["job_id"])] == []


async def test_agents_registering_a_new_type_at_once_all_succeed(api: Api) -> None:
    async def register() -> int:
        response = await api.http.post(
            f"{API_PREFIX}/workers/register", json={"task_types": ["resize"]}, headers=api.auth("worker")
        )
        return response.status_code

    assert await asyncio.gather(*(register() for _ in range(6))) == [201] * 6
    async with api.coord.db.read() as conn:
        types = (await conn.execute(select(JOB_TYPES.c.name).where(JOB_TYPES.c.name == "resize"))).all()
        agents = (await conn.execute(select(func.count()).select_from(WORKERS))).scalar_one()
    assert len(types) == 1 and agents == 6
