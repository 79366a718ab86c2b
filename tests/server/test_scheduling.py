"""Scheduled jobs (``run_at``, ``delay_s``): held back until due, then queued and handed out at once.

The coordinator's reaper runs once an hour here (tests/server/conftest.py), so a job that a held
claim gets without ``api.reap()`` was queued by the timer that sleeps until the next due time.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import pytest

from taskpost.protocol import API_PREFIX
from taskpost.server.services import schedule
from taskpost.server.settings import Settings
from tests.server.conftest import Api, HoldSeen, ManualClock, eventually, running_api

pytestmark = pytest.mark.anyio


def _timestamp(value: str) -> float:
    return datetime.fromisoformat(value).timestamp()


async def _stats_totals(api: Api) -> dict[str, int]:
    response = await api.http.get(f"{API_PREFIX}/stats", headers=api.auth("client"))
    assert response.status_code == 200, response.text
    totals: dict[str, int] = response.json()["totals"]
    return totals


async def test_a_delayed_job_waits_scheduled_and_is_claimable_once_due(api: Api) -> None:
    worker = await api.register()
    job = await api.submit(delay_s=60, params={"n": 1})
    assert job["state"] == "scheduled"
    assert _timestamp(job["available_at"]) == pytest.approx(_timestamp(job["created_at"]) + 60, abs=0.01)
    assert await _stats_totals(api) == {"scheduled": 1}
    assert await api.claim(worker) == []

    api.clock.advance(59)
    await api.reap()
    assert (await api.job(job["id"]))["state"] == "scheduled"
    assert await api.claim(worker) == []

    api.clock.advance(2)
    assert await api.reap() == 1
    queued = await api.job(job["id"])
    assert queued["state"] == "queued" and queued["available_at"] is None
    assert await _stats_totals(api) == {"queued": 1}
    [task] = await api.claim(worker)
    assert task["job_id"] == job["id"] and task["attempt"] == 1


async def test_a_held_claim_gets_the_job_when_it_falls_due_without_a_reaper_pass(
    api: Api, hold_seen: HoldSeen
) -> None:
    worker = await api.register()
    # The timer sleeps towards this one first: the later submit must wake it for its earlier time.
    far = await api.submit(delay_s=3000)
    near = await api.submit(delay_s=0.3)
    assert near["state"] == "scheduled"
    assert await api.claim(worker) == []

    started = time.monotonic()
    held = asyncio.create_task(api.claim(worker, wait_s=5))
    await asyncio.wait_for(hold_seen.seen.wait(), 5)
    api.clock.advance(0.3)
    [task] = await asyncio.wait_for(held, 10)
    assert task["job_id"] == near["id"]
    assert time.monotonic() - started < 4  # woken, not the end of the 5 s long poll
    assert (await api.job(far["id"]))["state"] == "scheduled"


async def test_a_submit_wakes_the_timer_for_an_earlier_due_time(api: Api) -> None:
    await api.submit(delay_s=3000)  # the timer now sleeps towards this one (up to the hour)
    near = await api.submit(delay_s=0.2)
    api.clock.advance(0.2)

    async def queued() -> bool:
        return bool((await api.job(near["id"]))["state"] == "queued")

    await eventually(queued, "the near job to be queued by the timer", timeout_s=5)


async def test_run_at_schedules_at_that_time_and_a_past_one_queues_now(api: Api) -> None:
    due = datetime.fromtimestamp(api.clock.now, UTC) + timedelta(hours=2)
    job = await api.submit(run_at=due.isoformat())
    assert job["state"] == "scheduled"
    assert _timestamp(job["available_at"]) == pytest.approx(due.timestamp(), abs=0.01)
    past = datetime.fromtimestamp(api.clock.now, UTC) - timedelta(minutes=1)
    now = await api.submit(run_at=past.isoformat())
    assert now["state"] == "queued" and now["available_at"] is None
    assert (await api.submit(delay_s=0))["state"] == "queued"


@pytest.mark.parametrize(
    ("spec", "field", "hint"),
    [
        ({"run_at": "2030-01-01T08:00:00", "delay_s": 5}, "run_at", "not both"),
        ({"run_at": "2030-01-01T08:00:00"}, "run_at", "time zone"),
    ],
)
async def test_bad_schedules_are_refused_naming_the_field(
    api: Api, spec: dict[str, object], field: str, hint: str
) -> None:
    body = await api.submit(expect=422, **spec)
    assert body["error"]["details"]["field"] == field
    assert hint in body["error"]["message"]


async def test_a_scheduled_job_can_be_cancelled_before_it_is_due(api: Api) -> None:
    worker = await api.register()
    job = await api.submit(delay_s=60)
    response = await api.http.post(f"{API_PREFIX}/jobs/{job['id']}/cancel", headers=api.auth("client"))
    assert response.status_code == 200, response.text
    assert response.json()["state"] == "cancelled" and response.json()["ended_at"] is not None
    api.clock.advance(61)
    assert await api.reap() == 0
    assert (await api.job(job["id"]))["state"] == "cancelled"
    assert await api.claim(worker) == []


async def test_total_timeout_counts_from_the_due_time(api: Api) -> None:
    job = await api.submit(delay_s=100, total_timeout_s=50)
    api.clock.advance(120)  # past created_at + 50, but the job only fell due 20 s ago
    await api.reap()
    assert (await api.job(job["id"]))["state"] == "queued"
    api.clock.advance(31)  # past due + 50
    await api.reap()
    dead = await api.job(job["id"])
    assert dead["state"] == "dead" and dead["error"]["kind"] == "total_timeout"


async def test_two_replicas_queue_each_due_job_once(settings: Settings, clock: ManualClock) -> None:
    count = 20
    async with running_api(settings, clock) as a, running_api(settings, clock) as b:
        b.keys = a.keys
        jobs = [await a.submit(delay_s=30) for _ in range(count)]
        clock.advance(31)
        queued = await asyncio.gather(schedule.queue_due_now(a.coord), schedule.queue_due_now(b.coord))
        assert sum(queued) == count
        assert {(await b.job(job["id"]))["state"] for job in jobs} == {"queued"}
        worker = await b.register()
        assert len(await b.claim(worker, max_tasks=count)) == count
