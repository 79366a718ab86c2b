"""Completions: only an agent that ran a job gets its stale completions recorded; a failed
completion sent again with its token is acknowledged again, like a successful one."""

from __future__ import annotations

import pytest

from tests.server.conftest import Api

pytestmark = pytest.mark.anyio


async def test_a_stranger_worker_writes_no_events_on_a_job(api: Api) -> None:
    job = await api.submit()
    holder = await api.register()
    [task] = await api.claim(holder)
    stranger_key = await api.new_key("worker")
    stranger = await api.register(headers=stranger_key)
    forged = {**task, "lease_token": "0" * 32}
    for outcome in ("succeeded", "failed"):
        ack = await api.complete(stranger, forged, outcome=outcome, headers=stranger_key)
        assert not ack["accepted"] and ack["code"] == "stale_lease"
    # The same key with another agent of its own is a stranger too.
    second = await api.register()
    assert not (await api.complete(second, forged))["accepted"]
    assert await api.events(job["id"]) == []
    assert (await api.job(job["id"]))["state"] == "processing"
    assert (await api.complete(holder, task))["accepted"]


async def test_the_agent_that_lost_its_lease_still_gets_its_late_completion_recorded(api: Api) -> None:
    job = await api.submit()
    late = await api.register()
    [task] = await api.claim(late)
    api.clock.advance(31)
    await api.reap()
    other = await api.register()
    [again] = await api.claim(other)
    ack = await api.complete(late, task)
    assert not ack["accepted"] and ack["code"] == "stale_lease"
    kinds = [(e["kind"], e["worker_id"]) for e in await api.events(job["id"])]
    assert kinds == [("lease_expired", late), ("stale_completion_refused", late)]
    assert (await api.complete(other, again))["accepted"]


@pytest.mark.parametrize(
    ("extra", "state"),
    [
        ({"retry_delay_s": 60}, "failed"),
        ({"retryable": False}, "dead"),
    ],
)
async def test_a_failed_completion_sent_again_is_acknowledged_again(
    api: Api, extra: dict[str, object], state: str
) -> None:
    job = await api.submit(max_attempts=3)
    worker = await api.register()
    [task] = await api.claim(worker)
    first = await api.complete(worker, task, outcome="failed", error_message="boom", **extra)
    assert first == {"job_id": job["id"], "accepted": True, "state": state, "code": None, "message": None}
    again = await api.complete(worker, task, outcome="failed", error_message="boom", **extra)
    assert again == first
    assert [e["kind"] for e in await api.events(job["id"])] == ["attempt_failed"]
    after = await api.job(job["id"])
    assert after["state"] == state and after["attempts"] == 1


async def test_a_resent_failure_does_not_touch_the_next_attempt(api: Api) -> None:
    job = await api.submit(max_attempts=3)
    first_agent = await api.register()
    [task] = await api.claim(first_agent)
    await api.complete(first_agent, task, outcome="failed", retry_delay_s=0)
    second_agent = await api.register()
    [next_task] = await api.claim(second_agent)
    resent = await api.complete(first_agent, task, outcome="failed", retry_delay_s=0)
    assert resent["accepted"] and resent["state"] == "processing"
    running = await api.job(job["id"])
    assert running["state"] == "processing" and running["worker_id"] == second_agent
    assert running["attempts"] == 2
    assert (await api.complete(second_agent, next_task, result="done"))["state"] == "completed"
    assert [e["kind"] for e in await api.events(job["id"])] == ["attempt_failed"]
