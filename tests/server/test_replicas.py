"""Several coordinator replicas on one database: no replica keeps truth to itself.

Each test runs two (or three) coordinator apps on the same database, each with its own process
state, as replicas behind a load balancer would be: what one replica does, another sees at the
agent's next request.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import pytest
from sqlalchemy import delete, select

from taskpost.protocol import API_PREFIX
from taskpost.server.app import create_app
from taskpost.server.coordinator import Coordinator
from taskpost.server.services import job_types, keys, reaper, replicas
from taskpost.server.services.jobs import JOBS
from taskpost.server.services.keys import KEYS
from taskpost.server.settings import Settings
from tests.conftest import postgres_only
from tests.server.conftest import Api, ManualClock, eventually, running_api

pytestmark = pytest.mark.anyio

LONG_ATTEMPT_S = 7 * 86400.0
"""A per-attempt timeout longer than the outages these tests make (an agent runs on meanwhile)."""
REPLICAS_AT_ONCE = 5


@asynccontextmanager
async def two_replicas(settings: Settings, clock: ManualClock) -> AsyncIterator[tuple[Api, Api]]:
    """Replicas ``a`` and ``b`` on one database; ``b`` uses the keys ``a`` made."""
    async with running_api(settings, clock) as a, running_api(settings, clock) as b:
        b.keys = a.keys
        yield a, b


async def _lease_expiry(api: Api, job_id: str) -> float:
    async with api.coord.db.read() as conn:
        expires: float = (
            await conn.execute(select(JOBS.c.lease_expires_at).where(JOBS.c.id == job_id))
        ).scalar_one()
    return expires


async def _drain(api: Api, worker: str, drain: bool = True) -> None:
    action = "drain" if drain else "resume"
    response = await api.http.post(f"{API_PREFIX}/workers/{worker}/{action}", headers=api.auth("admin"))
    assert response.status_code == 200, response.text


async def test_an_agent_registered_through_one_replica_works_through_another(
    settings: Settings, clock: ManualClock
) -> None:
    async with two_replicas(settings, clock) as (a, b):
        worker = await a.register()
        job = await a.submit()
        [task] = await b.claim(worker)
        assert task["job_id"] == job["id"]
        beat = await b.heartbeat(worker, task, progress=0.5)
        assert beat["tasks"][0]["lease_valid"] is True
        assert (await b.complete(worker, task))["accepted"] is True
        done = await a.job(job["id"])
        assert done["state"] == "completed" and done["attempts"] == 1


async def test_a_drain_on_one_replica_reaches_the_agent_on_another(
    settings: Settings, clock: ManualClock
) -> None:
    async with two_replicas(settings, clock) as (a, b):
        worker = await a.register()
        assert await b.claim(worker) == []  # b has now served this agent once
        await _drain(a, worker)
        job = await a.submit()

        response = await b.http.post(
            f"{API_PREFIX}/workers/{worker}/claim", json={"max_tasks": 1}, headers=b.auth("worker")
        )
        assert response.status_code == 200, response.text
        assert response.json()["drain"] is True and response.json()["tasks"] == []
        assert (await b.heartbeat(worker))["drain"] is True
        assert (await a.job(job["id"]))["state"] == "queued"

        await _drain(a, worker, drain=False)
        assert [t["job_id"] for t in await b.claim(worker)] == [job["id"]]


async def test_a_deregister_on_one_replica_reaches_the_agent_on_another(
    settings: Settings, clock: ManualClock
) -> None:
    async with two_replicas(settings, clock) as (a, b):
        worker = await a.register()
        assert await b.claim(worker) == []
        response = await a.http.delete(f"{API_PREFIX}/workers/{worker}", headers=a.auth("worker"))
        assert response.status_code == 204, response.text
        for path in ("claim", "heartbeat"):
            response = await b.http.post(
                f"{API_PREFIX}/workers/{worker}/{path}", json={}, headers=b.auth("worker")
            )
            assert response.status_code == 404, (path, response.text)
            assert response.json()["error"]["code"] == "worker_not_found"


async def test_a_key_revoked_on_one_replica_is_refused_by_another(
    settings: Settings, clock: ManualClock
) -> None:
    async with two_replicas(settings, clock) as (a, b):
        worker = await a.register()
        assert await b.claim(worker) == []
        listed = await a.http.get(f"{API_PREFIX}/keys", headers=a.auth("admin"))
        key_id = next(k["id"] for k in listed.json() if a.keys["worker"].startswith(k["prefix"]))
        response = await a.http.delete(f"{API_PREFIX}/keys/{key_id}", headers=a.auth("admin"))
        assert response.status_code == 200, response.text
        response = await b.http.post(
            f"{API_PREFIX}/workers/{worker}/claim", json={"max_tasks": 1}, headers=b.auth("worker")
        )
        assert response.status_code == 401, response.text


async def test_a_submit_through_one_replica_of_a_type_declared_through_another_gives_no_warning(
    settings: Settings, clock: ManualClock
) -> None:
    async with two_replicas(settings, clock) as (a, b):
        await a.register(task_types=["transcription"])
        response = await b.http.post(
            f"{API_PREFIX}/jobs", json={"type": "transcription"}, headers=b.auth("client")
        )
        assert response.status_code == 201, response.text
        assert response.json()["warnings"] == []


# Start-up steps that must happen once.


async def _start_together(*coords: Coordinator) -> AsyncExitStack:
    stack = AsyncExitStack()
    apps = [create_app(coord.settings, coord) for coord in coords]
    await asyncio.gather(*(stack.enter_async_context(app.router.lifespan_context(app)) for app in apps))
    return stack


def _replica(settings: Settings, clock: ManualClock) -> Coordinator:
    coord = Coordinator.from_settings(settings)
    coord.clock = clock
    return coord


async def _prepare_schema(settings: Settings) -> None:
    """Make the tables first: replicas racing to create them is the migrations' business."""
    coord = Coordinator.from_settings(settings)
    try:
        await coord.db.create_schema()
    finally:
        await coord.db.close()


async def test_replicas_starting_together_generate_one_bootstrap_key(
    settings: Settings, clock: ManualClock, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = settings.model_copy(update={"admin_key": None})
    await _prepare_schema(settings)
    coords = [_replica(settings, clock) for _ in range(REPLICAS_AT_ONCE)]
    async with await _start_together(*coords), coords[0].db.read() as conn:
        admins = (await conn.execute(select(KEYS.c.id).where(KEYS.c.role == "admin"))).all()
    assert len(admins) == 1
    printed = [
        line.strip() for line in capsys.readouterr().err.splitlines() if line.strip().startswith("tp_a_")
    ]
    assert len(printed) == 1, "the key is shown by the one replica that stored it"


async def test_bootstrap_key_steps_running_at_once_store_one_key(
    settings: Settings, clock: ManualClock
) -> None:
    """The start-up step itself, with no other start-up work spreading the replicas out."""
    await _prepare_schema(settings)
    coords = [_replica(settings, clock) for _ in range(REPLICAS_AT_ONCE)]
    try:
        generated = await asyncio.gather(*(keys.ensure_admin_key(coord, None) for coord in coords))
        async with coords[0].db.read() as conn:
            admins = (await conn.execute(select(KEYS.c.id).where(KEYS.c.role == "admin"))).all()
    finally:
        for coord in coords:
            await coord.db.close()
    assert len(admins) == 1
    assert len([secret for secret in generated if secret is not None]) == 1


async def test_replicas_starting_together_store_the_configured_key_once(
    settings: Settings, clock: ManualClock
) -> None:
    await _prepare_schema(settings)
    coords = [_replica(settings, clock) for _ in range(REPLICAS_AT_ONCE)]
    async with await _start_together(*coords):
        async with coords[0].db.read() as conn:
            admins = (await conn.execute(select(KEYS.c.id).where(KEYS.c.role == "admin"))).all()
        assert len(admins) == 1
        for coord in coords:  # every replica knows the key by that one row
            assert coord.verified_keys and set(coord.verified_keys.values()) == {admins[0].id}


# Restarts: leases get back only the time during which no replica was alive.


async def test_a_restart_while_another_replica_runs_extends_no_lease(
    settings: Settings, clock: ManualClock
) -> None:
    async with running_api(settings, clock) as a:
        worker = await a.register()
        job = await a.submit()
        await a.claim(worker)
        before = await _lease_expiry(a, job["id"])
        clock.advance(20)
        await replicas.beat(a.coord)
        clock.advance(5)
        async with running_api(settings, clock) as restarted:
            assert await _lease_expiry(restarted, job["id"]) == before
            clock.advance(settings.lease_s)  # its agent died while a was up: the lease runs out
            await reaper.reap_once(restarted.coord)
            assert (await restarted.job(job["id"]))["state"] == "queued"


async def test_a_restart_after_no_replica_ran_gives_leases_that_time_back(
    settings: Settings, clock: ManualClock
) -> None:
    async with running_api(settings, clock) as a:
        worker = await a.register()
        kept = await a.submit(timeout_s=LONG_ATTEMPT_S)
        lapsed = await a.submit(timeout_s=LONG_ATTEMPT_S)
        tasks = {t["job_id"]: t for t in await a.claim(worker, max_tasks=2)}
        clock.advance(25)
        await a.heartbeat(worker, tasks[kept["id"]])  # the other agent task stops heartbeating
        clock.advance(10)
        await replicas.beat(a.coord)  # a is last seen with one lease valid, one expired
        kept_before = await _lease_expiry(a, kept["id"])
    downtime = replicas.alive_window_s(settings.reaper_interval_s) + 1000
    clock.advance(downtime)
    async with running_api(settings, clock) as restarted:
        assert await _lease_expiry(restarted, kept["id"]) == pytest.approx(kept_before + downtime, abs=0.01)
        await reaper.reap_once(restarted.coord)
        assert (await restarted.job(kept["id"]))["state"] == "processing"
        # Its lease had run out while a was still up: it gets nothing back.
        assert (await restarted.job(lapsed["id"]))["state"] == "queued"


async def test_replicas_restarting_together_give_leases_the_time_back_once(
    settings: Settings, clock: ManualClock
) -> None:
    async with running_api(settings, clock) as a:
        worker = await a.register()
        job = await a.submit(timeout_s=LONG_ATTEMPT_S)
        await a.claim(worker)
        before = await _lease_expiry(a, job["id"])
    downtime = replicas.alive_window_s(settings.reaper_interval_s) + 1000
    clock.advance(downtime)
    coords = [_replica(settings, clock) for _ in range(REPLICAS_AT_ONCE)]
    try:
        # The start-up step itself, at once on every replica.
        restarts = await asyncio.gather(*(replicas.join(coord) for coord in coords))
        async with coords[0].db.read() as conn:
            after = (await conn.execute(select(JOBS.c.lease_expires_at))).scalar_one()
    finally:
        for coord in coords:
            await coord.db.close()
    assert after == pytest.approx(before + downtime, abs=0.01)
    assert sorted(restart.extended for restart in restarts) == [0] * (REPLICAS_AT_ONCE - 1) + [1]


async def test_a_database_without_replica_rows_gives_running_tasks_one_lease(
    settings: Settings, clock: ManualClock
) -> None:
    """A database from before replicas were recorded: how long it was down is not known."""
    async with running_api(settings, clock) as a:
        worker = await a.register()
        job = await a.submit()
        await a.claim(worker)
    older = _replica(settings, clock)
    try:
        async with older.db.write() as conn:
            await conn.execute(delete(replicas.REPLICAS))
    finally:
        await older.db.close()
    clock.advance(29)
    async with running_api(settings, clock) as restarted:
        assert await _lease_expiry(restarted, job["id"]) == pytest.approx(
            clock.now + settings.lease_s, abs=0.01
        )
        clock.advance(29)
        await reaper.reap_once(restarted.coord)
        assert (await restarted.job(job["id"]))["state"] == "processing"


# The reaper runs on every replica at once.


async def test_two_replicas_reaping_together_change_each_job_once(
    settings: Settings, clock: ManualClock
) -> None:
    count = 30
    async with two_replicas(settings, clock) as (a, b):
        worker = await a.register()
        expiring = [await a.submit(max_attempts=2) for _ in range(count)]
        last_try = [await a.submit(max_attempts=1) for _ in range(count)]
        await a.claim(worker, max_tasks=2 * count)
        out_of_time = [await a.submit(total_timeout_s=10.0) for _ in range(count)]
        clock.advance(settings.lease_s + 11)

        changed = await asyncio.gather(reaper.reap_once(a.coord), reaper.reap_once(b.coord))
        assert sum(changed) == 3 * count

        for job, kind, state in (
            *((j, "lease_expired", "queued") for j in expiring),
            *((j, "lease_expired", "dead") for j in last_try),
            *((j, "total_timeout", "dead") for j in out_of_time),
        ):
            now = await b.job(job["id"])
            assert now["state"] == state
            assert now["attempts"] == (0 if kind == "total_timeout" else 1)
            assert [e["kind"] for e in await b.events(job["id"])] == [kind], job["id"]


async def test_two_replicas_reaping_together_requeue_each_due_retry_once(
    settings: Settings, clock: ManualClock
) -> None:
    count = 30
    async with two_replicas(settings, clock) as (a, b):
        worker = await a.register()
        jobs = [await a.submit(max_attempts=3) for _ in range(count)]
        for task in await a.claim(worker, max_tasks=count):
            ack = await a.complete(worker, task, outcome="failed", error_message="try again", retry_delay_s=5)
            assert ack["state"] == "failed"
        clock.advance(6)
        changed = await asyncio.gather(reaper.reap_once(a.coord), reaper.reap_once(b.coord))
        assert sum(changed) == count
        assert {(await b.job(j["id"]))["state"] for j in jobs} == {"queued"}


@postgres_only
async def test_two_replicas_declaring_the_same_new_type_at_once_both_succeed(
    settings: Settings, clock: ManualClock
) -> None:
    """The second insert of the type waits on the first one's row lock, then finds the row there."""
    async with two_replicas(settings, clock) as (a, b):

        async def declare(api: Api) -> None:
            async with api.coord.db.write() as conn:
                await job_types.record_seen(conn, api.coord, ["resize"], clock.now)

        async with a.coord.db.write() as first:
            await job_types.record_seen(first, a.coord, ["resize"], clock.now)
            second = asyncio.create_task(declare(b))

            async def waits_on_a_lock() -> bool:
                async with a.coord.db.read() as conn:
                    query = "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                    return bool((await conn.exec_driver_sql(query)).scalar_one())

            await eventually(waits_on_a_lock, "the second declaration to wait for the first")
        await asyncio.wait_for(second, 30)
        assert (await b.submit(type="resize"))["type"] == "resize"
