"""Bulk queue operations: ``POST /queues/requeue`` (like ``rq requeue --all``) and
``POST /queues/empty`` (like ``rq empty``), on both databases."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import func, insert, select

from taskpost.protocol import API_PREFIX, MAX_BULK_JOBS, Priority
from taskpost.server.services.jobs import JOBS
from tests.server.conftest import Api
from tests.server.retention_helpers import Finisher

pytestmark = pytest.mark.anyio

REQUEUE = f"{API_PREFIX}/queues/requeue"
EMPTY = f"{API_PREFIX}/queues/empty"


async def _post(api: Api, path: str, body: dict[str, Any], headers: dict[str, str], expect: int = 200) -> Any:
    response = await api.http.post(path, json=body, headers=headers)
    assert response.status_code == expect, response.text
    return response.json()


async def _state(api: Api, job_id: str) -> str:
    state: str = (await api.job(job_id, headers=api.auth("admin")))["state"]
    return state


async def _kinds(api: Api, job_id: str) -> list[str]:
    response = await api.http.get(f"{API_PREFIX}/jobs/{job_id}/events", headers=api.auth("admin"))
    assert response.status_code == 200, response.text
    return [event["kind"] for event in response.json()]


async def test_requeue_dead_jobs_of_one_type_after_a_dry_run(api: Api) -> None:
    finisher = Finisher(api)
    dead_noop = [await finisher.finish("dead") for _ in range(2)]
    dead_resize = await finisher.finish("dead", type="resize")
    cancelled = await finisher.finish("cancelled")
    client = api.auth("client")

    dry = await _post(api, REQUEUE, {"states": ["dead"], "type": "noop", "dry_run": True}, client)
    assert dry == {"dry_run": True, "count": 2, "more": False}
    assert [await _state(api, job["id"]) for job in dead_noop] == ["dead", "dead"]

    notifier, job_changes = api.coord.notifier.version, api.coord.job_changes.version
    done = await _post(api, REQUEUE, {"states": ["dead"], "type": "noop"}, client)
    assert done == {"dry_run": False, "count": 2, "more": False}
    assert api.coord.notifier.version > notifier and api.coord.job_changes.version > job_changes
    for job in dead_noop:
        requeued = await api.job(job["id"])
        assert (requeued["state"], requeued["attempts"]) == ("queued", 0)
        assert (await _kinds(api, job["id"]))[-1] == "requeued"
    assert await _state(api, dead_resize["id"]) == "dead"
    assert await _state(api, cancelled["id"]) == "cancelled"
    again = await _post(api, REQUEUE, {"states": ["dead", "cancelled"]}, client)
    assert again["count"] == 2  # the resize job and the cancelled one
    assert await _state(api, cancelled["id"]) == "queued"


async def test_a_failed_job_awaiting_its_retry_is_queued_now(api: Api) -> None:
    worker = await api.register()
    job = await api.submit(max_attempts=3)
    [task] = await api.claim(worker)
    await api.complete(worker, task, outcome="failed", error_message="try later")
    assert await _state(api, job["id"]) == "failed"
    assert await api.claim(worker) == []  # its backoff has not passed

    result = await _post(api, REQUEUE, {"states": ["failed"]}, api.auth("client"))
    assert result["count"] == 1
    [again] = await api.claim(worker)
    assert again["job_id"] == job["id"] and again["attempt"] == 1


async def _insert_dead(api: Api, count: int, namespace: str = "default") -> None:
    now = api.clock()
    rows = [
        {
            "id": str(uuid.uuid4()),
            "namespace": namespace,
            "type": "noop",
            "state": "dead",
            "priority": Priority.DEFAULT.rank,
            "params": {},
            "meta": {},
            "max_attempts": 1,
            "attempts": 1,
            "retry": {},
            "inputs": [],
            "outputs": [],
            "created_at": now,
            "ended_at": now,
        }
        for _ in range(count)
    ]
    async with api.coord.db.write() as conn:
        await conn.execute(insert(JOBS), rows)


async def _count_in(api: Api, state: str) -> int:
    async with api.coord.db.read() as conn:
        query = select(func.count()).select_from(JOBS).where(JOBS.c.state == state)
        return int((await conn.execute(query)).scalar_one())


async def test_one_call_requeues_at_most_the_limit_and_says_there_are_more(api: Api) -> None:
    await _insert_dead(api, MAX_BULK_JOBS + 5)
    admin = api.auth("admin")
    dry = await _post(api, REQUEUE, {"states": ["dead"], "dry_run": True}, admin)
    assert dry == {"dry_run": True, "count": MAX_BULK_JOBS + 5, "more": False}

    first = await _post(api, REQUEUE, {"states": ["dead"]}, admin)
    assert first == {"dry_run": False, "count": MAX_BULK_JOBS, "more": True}
    assert await _count_in(api, "queued") == MAX_BULK_JOBS
    second = await _post(api, REQUEUE, {"states": ["dead"]}, admin)
    assert second == {"dry_run": False, "count": 5, "more": False}
    assert await _count_in(api, "dead") == 0


async def test_a_client_key_acts_on_its_own_namespace_only(api: Api) -> None:
    finisher = Finisher(api)
    in_a, in_b = await api.new_key("client", "a"), await api.new_key("client", "b")
    job_a = await finisher.finish("dead", headers=in_a)
    job_b = await finisher.finish("dead", headers=in_b)

    assert (await _post(api, REQUEUE, {"states": ["dead"]}, in_a))["count"] == 1
    assert await _state(api, job_a["id"]) == "queued"
    assert await _state(api, job_b["id"]) == "dead"
    refused = await api.http.post(f"{REQUEUE}?namespace=b", json={"states": ["dead"]}, headers=in_a)
    assert refused.status_code == 403
    emptied = await _post(api, EMPTY, {"type": "noop"}, in_a)
    assert emptied["count"] == 1  # job_a, queued again; nothing of b's
    assert await _state(api, job_b["id"]) == "dead"

    admin = api.auth("admin")
    dry = await _post(
        api, f"{REQUEUE}?namespace=b", {"states": ["dead", "cancelled"], "dry_run": True}, admin
    )
    assert dry["count"] == 1
    assert (await _post(api, REQUEUE, {"states": ["dead", "cancelled"]}, admin))["count"] == 2
    worker_answer = await api.http.post(REQUEUE, json={"states": ["dead"]}, headers=api.auth("worker"))
    assert worker_answer.status_code == 403


async def test_empty_cancels_the_queued_jobs_of_a_type_and_the_scheduled_ones_when_asked(api: Api) -> None:
    await api.register(task_types=["noop", "resize"])
    queued = [await api.submit() for _ in range(2)]
    scheduled = await api.submit(delay_s=3600.0)
    other = await api.submit(type="resize")
    client = api.auth("client")
    assert await _state(api, scheduled["id"]) == "scheduled"

    dry = await _post(api, EMPTY, {"type": "noop", "dry_run": True}, client)
    assert dry == {"dry_run": True, "count": 2, "more": False}
    assert await _state(api, queued[0]["id"]) == "queued"

    job_changes = api.coord.job_changes.version
    assert await _post(api, EMPTY, {"type": "noop"}, client) == {"dry_run": False, "count": 2, "more": False}
    assert api.coord.job_changes.version > job_changes
    for job in queued:
        assert await _state(api, job["id"]) == "cancelled"
        assert await _kinds(api, job["id"]) == ["cancel_requested"]
    assert await _state(api, scheduled["id"]) == "scheduled"
    assert await _state(api, other["id"]) == "queued"

    assert (await _post(api, EMPTY, {"type": "noop", "include_scheduled": True}, client))["count"] == 1
    assert await _state(api, scheduled["id"]) == "cancelled"
    assert await _state(api, other["id"]) == "queued"


async def test_bad_bulk_requests_name_the_field(api: Api) -> None:
    client = api.auth("client")
    for path, body, field in (
        (REQUEUE, {"states": []}, "states"),
        (REQUEUE, {"states": ["completed"]}, "states"),
        (EMPTY, {}, "type"),
        (EMPTY, {"type": "noop", "dry_run": "yes"}, "dry_run"),
    ):
        response = await api.http.post(path, json=body, headers=client)
        assert response.status_code == 422, (path, body, response.text)
        assert field in response.json()["error"]["message"], response.text
