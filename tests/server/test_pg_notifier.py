"""Wake-ups across coordinator processes on one PostgreSQL database (LISTEN/NOTIFY).

The re-check fallback is set far beyond every deadline here, so a waiter that returns in time
was woken by a notification, not by the fallback.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]
import pytest

from taskpost.protocol import API_PREFIX
from taskpost.server.notifier_postgres import PostgresNotifier
from tests.server.conftest import Api, HoldSeen, ManualClock, eventually, make_settings, running_api

pytestmark = pytest.mark.anyio

FALLBACK_S = 600.0
DEADLINE_S = 30.0


@asynccontextmanager
async def notifiers(url: str, count: int = 2) -> AsyncIterator[list[PostgresNotifier]]:
    started = [PostgresNotifier(url, recheck_s=FALLBACK_S) for _ in range(count)]
    try:
        for notifier in started:
            await notifier.start()
            assert notifier.listening
        yield started
    finally:
        for notifier in started:
            await notifier.aclose()


async def _woken(notifier: PostgresNotifier, seen: int) -> None:
    await asyncio.wait_for(notifier.wait(seen, FALLBACK_S), DEADLINE_S)
    assert notifier.version != seen


async def test_a_notify_in_one_process_wakes_a_waiter_in_another(postgres_url: str) -> None:
    async with notifiers(postgres_url) as (sender, receiver):
        seen_here, seen_there = sender.version, receiver.version
        waiter = asyncio.create_task(_woken(receiver, seen_there))
        await asyncio.sleep(0)  # the waiter is waiting
        sender.notify()
        assert sender.version != seen_here  # its own waiters wake at once
        await waiter


async def test_the_listener_comes_back_after_its_connection_is_killed(postgres_url: str) -> None:
    async with notifiers(postgres_url) as (sender, receiver):
        killed = receiver.backend_pid
        assert killed is not None
        seen = receiver.version
        conn = await asyncpg.connect(postgres_url)
        try:
            assert await conn.fetchval("SELECT pg_terminate_backend($1)", killed)
        finally:
            await conn.close()

        async def listening_again() -> bool:
            return receiver.listening and receiver.backend_pid not in (None, killed)

        await eventually(listening_again, "the listener to reconnect")
        # Notifications sent while it was away are lost: reconnecting woke its waiters.
        assert receiver.version != seen
        seen = receiver.version
        waiter = asyncio.create_task(_woken(receiver, seen))
        await asyncio.sleep(0)
        sender.notify()
        await waiter


async def test_close_releases_waiters_and_later_waits_return_at_once(postgres_url: str) -> None:
    async with notifiers(postgres_url, count=1) as (notifier,):
        waiter = asyncio.create_task(notifier.wait(notifier.version, FALLBACK_S))
        await asyncio.sleep(0)
        assert not waiter.done()
        notifier.close()
        await asyncio.wait_for(waiter, DEADLINE_S)
        assert notifier.closed
        await asyncio.wait_for(notifier.wait(notifier.version, FALLBACK_S), DEADLINE_S)


async def test_a_process_skips_its_own_notifications(postgres_url: str) -> None:
    """Its own NOTIFY comes back to it too: skipped, since its waiters woke when it was sent."""
    async with notifiers(postgres_url) as (sender, receiver):
        seen = receiver.version
        sender.notify()
        after_own = sender.version
        await _woken(receiver, seen)
        receiver.notify()  # delivered to the sender after the sender's own, which came first
        await _woken(sender, after_own)
        assert sender.version == after_own + 1


# Two coordinator apps on one PostgreSQL database.


@asynccontextmanager
async def two_replicas(
    postgres_url: str, tmp_path: Path, clock: ManualClock
) -> AsyncIterator[tuple[Api, Api]]:
    settings = make_settings(tmp_path / "data", postgres_url).model_copy(
        update={"long_poll_s": 60, "wakeup_recheck_s": FALLBACK_S}
    )
    async with running_api(settings, clock) as a, running_api(settings, clock) as b:
        b.keys = a.keys
        yield a, b


async def _held_claim(api: Api, worker: str) -> dict[str, object]:
    response = await api.http.post(
        f"{API_PREFIX}/workers/{worker}/claim",
        json={"max_tasks": 1, "wait_s": 60},
        headers=api.auth("worker"),
    )
    assert response.status_code == 200, response.text
    body: dict[str, object] = response.json()
    return body


async def test_a_submit_on_one_replica_wakes_a_claim_held_on_another(
    postgres_url: str, tmp_path: Path, clock: ManualClock, hold_seen: HoldSeen
) -> None:
    async with two_replicas(postgres_url, tmp_path, clock) as (a, b):
        worker = await a.register()
        held = asyncio.create_task(_held_claim(b, worker))
        await asyncio.wait_for(hold_seen.seen.wait(), DEADLINE_S)
        job = await a.submit()
        reply = await asyncio.wait_for(held, DEADLINE_S)
        assert [task["job_id"] for task in reply["tasks"]] == [job["id"]]  # type: ignore[attr-defined]


async def test_a_drain_on_one_replica_ends_a_claim_held_on_another(
    postgres_url: str, tmp_path: Path, clock: ManualClock, hold_seen: HoldSeen
) -> None:
    async with two_replicas(postgres_url, tmp_path, clock) as (a, b):
        worker = await a.register()
        held = asyncio.create_task(_held_claim(b, worker))
        await asyncio.wait_for(hold_seen.seen.wait(), DEADLINE_S)
        response = await a.http.post(f"{API_PREFIX}/workers/{worker}/drain", headers=a.auth("admin"))
        assert response.status_code == 200, response.text
        reply = await asyncio.wait_for(held, DEADLINE_S)
        assert reply["drain"] is True and reply["tasks"] == []
