"""Failed attempts: backoff, dead-letter, requeue, timeouts, lost leases."""

from __future__ import annotations

import random

import pytest

from taskpost.protocol import API_PREFIX
from taskpost.server.services.backoff import retry_delay_s
from tests.server.conftest import Api

pytestmark = pytest.mark.anyio


def test_backoff_is_exponential_capped_and_jittered() -> None:
    policy = {"base_s": 1.0, "factor": 2.0, "cap_s": 10.0, "jitter": False}
    assert [retry_delay_s(policy, n) for n in range(1, 7)] == [1, 2, 4, 8, 10, 10]
    assert retry_delay_s(policy, 10_000) == 10
    jittered = {**policy, "jitter": True}
    draws = [retry_delay_s(jittered, 3, random.Random(seed)) for seed in range(200)]
    assert all(2 <= d <= 4 for d in draws)
    assert max(draws) - min(draws) > 1


async def _fail(api: Api, worker: str, **extra: object) -> dict[str, object]:
    [task] = await api.claim(worker)
    return await api.complete(
        worker, task, outcome="failed", error_message="boom", traceback="Traceback ...", **extra
    )


async def test_retries_with_backoff_then_dead_then_requeue(api: Api) -> None:
    job = await api.submit(max_attempts=3, retry={"base_s": 10, "factor": 3, "cap_s": 60, "jitter": False})
    worker = await api.register()
    assert (await _fail(api, worker))["state"] == "failed"
    failed = await api.job(job["id"])
    assert failed["error"]["message"] == "boom" and failed["error"]["traceback"] == "Traceback ..."
    assert await api.claim(worker) == []  # backing off
    api.clock.advance(9)
    await api.reap()
    assert await api.claim(worker) == []
    api.clock.advance(1.5)
    await api.reap()
    assert (await api.job(job["id"]))["state"] == "queued"
    assert (await _fail(api, worker))["state"] == "failed"
    api.clock.advance(30)  # 10 * 3
    await api.reap()
    assert (await _fail(api, worker))["state"] == "dead"
    dead = await api.job(job["id"])
    assert dead["attempts"] == 3 and dead["ended_at"] is not None
    response = await api.http.post(f"{API_PREFIX}/jobs/{job['id']}/requeue", headers=api.auth("client"))
    assert response.json()["state"] == "queued" and response.json()["attempts"] == 0
    [task] = await api.claim(worker)
    await api.complete(worker, task, result="fine now")
    assert (await api.job(job["id"]))["state"] == "completed"


async def test_non_retryable_errors_go_straight_to_dead(api: Api) -> None:
    job = await api.submit(max_attempts=5)
    worker = await api.register()
    ack = await _fail(api, worker, retryable=False, error_kind="bad_input")
    assert ack["state"] == "dead"
    dead = await api.job(job["id"])
    assert dead["error"]["kind"] == "bad_input" and dead["error"]["retryable"] is False


async def test_handler_chosen_retry_delay(api: Api) -> None:
    job = await api.submit(max_attempts=2)
    worker = await api.register()
    await _fail(api, worker, retry_delay_s=120)
    failed = await api.job(job["id"])
    assert failed["state"] == "failed"
    api.clock.advance(100)
    await api.reap()
    assert (await api.job(job["id"]))["state"] == "failed"
    api.clock.advance(21)
    await api.reap()
    assert (await api.job(job["id"]))["state"] == "queued"


async def test_lost_lease_requeues_at_once_then_dead_when_out_of_attempts(api: Api) -> None:
    job = await api.submit(max_attempts=2)
    worker = await api.register()
    await api.claim(worker)
    api.clock.advance(31)
    await api.reap()
    assert (await api.job(job["id"]))["state"] == "queued"
    await api.claim(worker)
    api.clock.advance(31)
    await api.reap()
    dead = await api.job(job["id"])
    assert dead["state"] == "dead" and dead["error"]["kind"] == "lease_expired"
    events = await api.events(job["id"])
    assert [e["kind"] for e in events] == ["lease_expired", "lease_expired"]
    assert "stopped heartbeating" in events[0]["detail"]


async def test_the_coordinator_fails_an_attempt_past_its_timeout(api: Api) -> None:
    job = await api.submit(timeout_s=60, retry={"base_s": 0, "jitter": False})
    worker = await api.register()
    [task] = await api.claim(worker)
    for _ in range(4):  # the agent keeps heartbeating but the handler hangs
        api.clock.advance(20)
        await api.heartbeat(worker, task)
        await api.reap()
    current = await api.job(job["id"])
    assert current["state"] == "queued" and current["error"]["kind"] == "timeout"
    assert (await api.heartbeat(worker, task))["tasks"][0]["lease_valid"] is False


async def test_total_timeout_across_attempts(api: Api) -> None:
    job = await api.submit(
        total_timeout_s=80, max_attempts=10, retry={"base_s": 30, "factor": 1, "jitter": False}
    )
    worker = await api.register()
    await _fail(api, worker)
    api.clock.advance(31)
    await api.reap()
    await _fail(api, worker)
    api.clock.advance(31)
    await api.reap()
    ack = await _fail(api, worker)  # the next retry would start past the deadline
    assert ack["state"] == "dead"
    queued_too_long = await api.submit(total_timeout_s=5)
    api.clock.advance(6)
    await api.reap()
    assert (await api.job(queued_too_long["id"]))["state"] == "dead"
    assert (await api.job(job["id"]))["error"]["message"].startswith("boom")


async def test_cancel_wins_over_retry_when_the_lease_expires(api: Api) -> None:
    job = await api.submit()
    worker = await api.register()
    await api.claim(worker)
    await api.http.post(f"{API_PREFIX}/jobs/{job['id']}/cancel", headers=api.auth("client"))
    api.clock.advance(31)
    await api.reap()
    assert (await api.job(job["id"]))["state"] == "cancelled"
