"""The state log: every transition writes a ``state`` event in its transaction, progress and
partial output become events, and the stream kinds stay out of the default event list."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from taskpost.protocol import API_PREFIX
from tests.server.conftest import Api

pytestmark = pytest.mark.anyio


async def all_events(api: Api, job_id: str) -> list[dict[str, Any]]:
    response = await api.http.get(
        f"{API_PREFIX}/jobs/{job_id}/events", params={"all": "true"}, headers=api.auth("client")
    )
    assert response.status_code == 200, response.text
    body: list[dict[str, Any]] = response.json()
    return body


def states(events: list[dict[str, Any]]) -> list[str]:
    return [e["data"]["state"] for e in events if e["kind"] == "state"]


async def heartbeat(api: Api, worker: str, task: dict[str, Any], **fields: Any) -> dict[str, Any]:
    body = {"tasks": [{"job_id": task["job_id"], "lease_token": task["lease_token"], **fields}]}
    response = await api.http.post(
        f"{API_PREFIX}/workers/{worker}/heartbeat", json=body, headers=api.auth("worker")
    )
    assert response.status_code == 200, response.text
    reply: dict[str, Any] = response.json()
    return reply


async def test_a_run_logs_its_states_and_changed_progress_only(api: Api) -> None:
    job = await api.submit()
    worker = await api.register()
    [task] = await api.claim(worker)
    await heartbeat(api, worker, task, progress=0.5, message="half")
    await heartbeat(api, worker, task, progress=0.5, message="half")  # unchanged: no event
    await heartbeat(api, worker, task, progress=0.75, message="half")
    await api.complete(worker, task, result={"ok": True})

    events = await all_events(api, job["id"])
    assert [e["kind"] for e in events] == ["state", "state", "progress", "progress", "state"]
    assert states(events) == ["queued", "processing", "completed"]
    assert [e["data"] for e in events if e["kind"] == "progress"] == [
        {"progress": 0.5, "message": "half"},
        {"progress": 0.75, "message": "half"},
    ]
    assert events[1]["worker_id"] == worker and events[1]["attempt"] == 1
    assert "waited_s" in events[1]["data"] and "run_s" in events[-1]["data"]
    ids = [e["id"] for e in events]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert await api.events(job["id"]) == []  # the default list still shows incidents only


async def test_failures_retries_cancels_and_requeues_are_logged(api: Api) -> None:
    job = await api.submit(max_attempts=2)
    worker = await api.register()
    [task] = await api.claim(worker)
    await api.complete(worker, task, outcome="failed", error_message="boom", retry_delay_s=5)
    api.clock.advance(6)
    await api.reap()  # queues the retry
    [task] = await api.claim(worker)
    await api.complete(worker, task, outcome="failed", error_message="boom again")
    requeued = await api.http.post(f"{API_PREFIX}/jobs/{job['id']}/requeue", headers=api.auth("client"))
    assert requeued.status_code == 200, requeued.text
    cancelled = await api.http.post(f"{API_PREFIX}/jobs/{job['id']}/cancel", headers=api.auth("client"))
    assert cancelled.status_code == 200, cancelled.text

    events = await all_events(api, job["id"])
    assert states(events) == [
        "queued",
        "processing",
        "failed",
        "queued",
        "processing",
        "dead",
        "queued",
        "cancelled",
    ]
    assert [e["kind"] for e in await api.events(job["id"])] == [
        "attempt_failed",
        "attempt_failed",
        "requeued",
        "cancel_requested",
    ]


async def test_lease_expiry_and_scheduled_jobs_are_logged(api: Api) -> None:
    later = await api.submit(delay_s=60)
    job = await api.submit()
    worker = await api.register()
    [task] = await api.claim(worker)
    assert task["job_id"] == job["id"]
    api.clock.advance(api.coord.settings.lease_s + 61)
    await api.reap()

    assert states(await all_events(api, job["id"])) == ["queued", "processing", "queued"]
    assert states(await all_events(api, later["id"])) == ["scheduled", "queued"]


async def test_partial_chunks_sent_again_are_stored_once(api: Api) -> None:
    job = await api.submit()
    worker = await api.register()
    [task] = await api.claim(worker)
    await heartbeat(api, worker, task, partial=[{"text": "a"}, {"text": "b"}], partial_from=0)
    # The answer to that heartbeat was lost: the agent sends the same chunks again, and one more.
    await heartbeat(api, worker, task, partial=[{"text": "a"}, {"text": "b"}, {"text": "c"}], partial_from=0)
    await heartbeat(api, worker, task, partial=[{"text": "d"}], partial_from=3)

    partial = [e["data"] for e in await all_events(api, job["id"]) if e["kind"] == "partial"]
    assert partial == [{"index": i, "chunk": {"text": t}} for i, t in enumerate("abcd")]


async def test_a_finished_jobs_stream_sends_its_log_and_ends(api: Api) -> None:
    job = await api.submit()
    worker = await api.register()
    [task] = await api.claim(worker)
    await heartbeat(api, worker, task, progress=0.5)
    await api.complete(worker, task)

    url = f"{API_PREFIX}/jobs/{job['id']}/events/stream"
    response = await api.http.get(url, headers=api.auth("client"))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    frames = [f for f in response.text.split("\n\n") if f.startswith("id: ")]
    events = [json.loads(f.split("data: ", 1)[1]) for f in frames]
    assert [(e["kind"], e.get("state")) for e in events] == [
        ("state", "queued"),
        ("state", "processing"),
        ("progress", None),
        ("state", "completed"),
    ]
    assert events[2]["progress"] == 0.5 and events[0]["namespace"] == "default"

    resumed = await api.http.get(url, headers={**api.auth("client"), "Last-Event-ID": str(events[1]["id"])})
    assert [
        json.loads(f.split("data: ", 1)[1])["id"] for f in resumed.text.split("\n\n") if "data: " in f
    ] == [e["id"] for e in events[2:]]


async def test_stream_refusals(api: Api) -> None:
    other = await api.new_key("client", "other")
    job = await api.submit()
    url = f"{API_PREFIX}/jobs/{job['id']}/events/stream"
    assert (await api.http.get(url, headers=other)).status_code == 404
    bad = await api.http.get(url, headers={**api.auth("client"), "Last-Event-ID": "soon"})
    assert bad.status_code == 422 and "Last-Event-ID" in bad.text
    assert (
        await api.http.get(f"{API_PREFIX}/events/stream?state=bogus", headers=api.auth("client"))
    ).status_code == 422


async def test_random_workload_each_jobs_last_state_event_is_its_state(api: Api) -> None:
    rng = random.Random(11)
    worker = await api.register()
    jobs = [
        (await api.submit(max_attempts=2, **({"delay_s": 30} if i % 5 == 0 else {})))["id"] for i in range(12)
    ]
    held: list[dict[str, Any]] = []
    for _ in range(40):
        action = rng.choice(["claim", "claim", "finish", "fail", "beat", "cancel", "requeue", "expire"])
        if action == "claim":
            held += await api.claim(worker, max_tasks=2)
        elif action in ("finish", "fail") and held:
            task = held.pop(rng.randrange(len(held)))
            if action == "finish":
                await api.complete(worker, task)
            else:
                await api.complete(worker, task, outcome="failed", error_message="x", retry_delay_s=1)
        elif action == "beat" and held:
            await heartbeat(api, worker, rng.choice(held), progress=rng.random())
        elif action in ("cancel", "requeue"):
            await api.http.post(f"{API_PREFIX}/jobs/{rng.choice(jobs)}/{action}", headers=api.auth("client"))
        elif action == "expire":
            api.clock.advance(api.coord.settings.lease_s + 31)
            await api.reap()
            held.clear()
    for job_id in jobs:
        job = await api.job(job_id)
        assert states(await all_events(api, job_id))[-1] == job["state"], job_id
