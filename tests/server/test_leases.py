"""Claims under a lease: ordering, routing, long poll, stale tokens, idempotent completion."""

from __future__ import annotations

import asyncio
import hashlib
import time

import pytest

from taskpost.protocol import API_PREFIX
from tests.server.conftest import Api

pytestmark = pytest.mark.anyio


async def test_priority_first_then_fifo(api: Api) -> None:
    low = await api.submit(priority="low")
    default_1 = await api.submit()
    high = await api.submit(priority="high")
    default_2 = await api.submit()
    worker = await api.register()
    order = [(await api.claim(worker))[0]["job_id"] for _ in range(4)]
    assert order == [high["id"], default_1["id"], default_2["id"], low["id"]]


async def test_a_claim_returns_a_batch_with_distinct_tokens(api: Api) -> None:
    for _ in range(5):
        await api.submit()
    worker = await api.register()
    tasks = await api.claim(worker, max_tasks=3)
    assert len(tasks) == 3
    assert len({t["lease_token"] for t in tasks}) == 3
    assert all(t["attempt"] == 1 for t in tasks)
    assert len(await api.claim(worker, max_tasks=10)) == 2


async def test_routing_by_type_worker_type_and_labels(api: Api) -> None:
    gpu_only = await api.submit(worker_type="gpu")
    labelled = await api.submit(labels=["eu", "fast"])
    plain = await api.submit()
    cpu = await api.register(worker_type="cpu", labels=["eu"])
    other_type = await api.register(task_types=["resize"], worker_type="gpu", labels=["eu", "fast"])
    assert [t["job_id"] for t in await api.claim(cpu, max_tasks=10)] == [plain["id"]]
    assert await api.claim(other_type, max_tasks=10) == []
    gpu = await api.register(worker_type="gpu", labels=["eu", "fast", "big"])
    claimed = {t["job_id"] for t in await api.claim(gpu, max_tasks=10)}
    assert claimed == {gpu_only["id"], labelled["id"]}


async def test_empty_queue_answers_204(api: Api) -> None:
    worker = await api.register()
    response = await api.http.post(
        f"{API_PREFIX}/workers/{worker}/claim", json={"max_tasks": 1, "wait_s": 0}, headers=api.auth("worker")
    )
    assert response.status_code == 204


async def test_long_poll_wakes_on_submit(api: Api) -> None:
    worker = await api.register()
    started = time.monotonic()
    waiting = asyncio.create_task(api.claim(worker, wait_s=5))
    await asyncio.sleep(0)  # let the claim reach its hold (no timing depends on this)
    job = await api.submit()
    tasks = await asyncio.wait_for(waiting, timeout=10)
    assert [t["job_id"] for t in tasks] == [job["id"]]
    assert time.monotonic() - started < 4, (
        "the held claim should return on submit, not at the end of the hold"
    )


async def test_completion_is_idempotent_and_stale_tokens_are_refused(api: Api) -> None:
    job = await api.submit()
    worker = await api.register()
    [task] = await api.claim(worker)
    first = await api.complete(worker, task, result={"n": 1})
    again = await api.complete(worker, task, result={"n": 2})
    assert (
        first
        == again
        == {"job_id": job["id"], "accepted": True, "state": "completed", "code": None, "message": None}
    )
    assert (await api.job(job["id"]))["result"] == {"n": 1}
    forged = await api.complete(worker, {**task, "lease_token": "0" * 32}, result={"n": 3})
    assert forged["accepted"] is False and forged["code"] == "stale_lease"
    assert (await api.job(job["id"]))["result"] == {"n": 1}
    assert [e["kind"] for e in await api.events(job["id"])] == ["stale_completion_refused"]


async def test_a_late_completion_after_re_lease_is_refused_and_recorded(api: Api) -> None:
    job = await api.submit()
    slow = await api.register(name="slow")
    fast = await api.register(name="fast")
    [old] = await api.claim(slow)
    api.clock.advance(31)  # past the 30 s lease without a heartbeat
    assert await api.reap() == 1
    [new] = await api.claim(fast)
    assert new["job_id"] == job["id"] and new["attempt"] == 2
    late = await api.complete(slow, old, result="late")
    assert late["accepted"] is False and late["code"] == "stale_lease"
    ok = await api.complete(fast, new, result="on time")
    assert ok["accepted"] is True
    final = await api.job(job["id"])
    assert final["state"] == "completed" and final["result"] == "on time"
    kinds = [e["kind"] for e in await api.events(job["id"])]
    assert kinds == ["lease_expired", "stale_completion_refused"]


async def test_heartbeat_extends_the_lease_and_reports_progress(api: Api) -> None:
    job = await api.submit()
    worker = await api.register()
    [task] = await api.claim(worker)
    for _ in range(3):
        api.clock.advance(20)
        reply = await api.heartbeat(worker, task, progress=0.5)
        assert reply["tasks"][0]["lease_valid"] is True
        assert await api.reap() == 0
    current = await api.job(job["id"])
    assert current["state"] == "processing" and current["progress"] == 0.5
    stale = await api.heartbeat(worker, {**task, "lease_token": "f" * 32})
    assert stale["tasks"][0]["lease_valid"] is False


async def test_cancel_of_a_running_task_reaches_the_agent(api: Api) -> None:
    job = await api.submit()
    worker = await api.register()
    [task] = await api.claim(worker)
    response = await api.http.post(f"{API_PREFIX}/jobs/{job['id']}/cancel", headers=api.auth("client"))
    assert response.json()["state"] == "processing" and response.json()["cancel_requested"] is True
    reply = await api.heartbeat(worker, task)
    assert reply["tasks"][0]["cancel_requested"] is True
    ack = await api.complete(worker, task, outcome="cancelled")
    assert ack["state"] == "cancelled"
    assert (await api.job(job["id"]))["state"] == "cancelled"


async def test_release_requeues_without_using_an_attempt(api: Api) -> None:
    job = await api.submit()
    worker = await api.register()
    [task] = await api.claim(worker)
    body = {
        "tasks": [{"job_id": task["job_id"], "lease_token": task["lease_token"]}],
        "reason": "shutting down",
    }
    response = await api.http.post(
        f"{API_PREFIX}/workers/{worker}/release", json=body, headers=api.auth("worker")
    )
    assert response.json()["acks"][0]["state"] == "queued"
    assert (await api.job(job["id"]))["attempts"] == 0
    [again] = await api.claim(worker)
    assert again["attempt"] == 1


async def test_inputs_and_outputs_need_the_live_lease(api: Api) -> None:
    payload = b"audio bytes" * 1000
    uploaded = await api.http.post(
        f"{API_PREFIX}/uploads", params={"name": "a.wav"}, content=payload, headers=api.auth("client")
    )
    assert uploaded.status_code == 201
    assert uploaded.json()["sha256"] == hashlib.sha256(payload).hexdigest()
    job = await api.submit(inputs=[{"name": "a.wav", "upload_id": uploaded.json()["upload_id"]}])
    worker = await api.register()
    [task] = await api.claim(worker)
    assert task["inputs"] == [
        {"name": "a.wav", "size": len(payload), "sha256": hashlib.sha256(payload).hexdigest()}
    ]
    url = f"{API_PREFIX}/tasks/{job['id']}/inputs/a.wav"
    wrong = await api.http.get(url, headers={**api.auth("worker"), "X-Lease-Token": "bad"})
    assert wrong.status_code == 409 and wrong.json()["error"]["code"] == "stale_lease"
    right = await api.http.get(url, headers={**api.auth("worker"), "X-Lease-Token": task["lease_token"]})
    assert right.status_code == 200 and right.content == payload
    out_url = f"{API_PREFIX}/tasks/{job['id']}/outputs/result.txt"
    bad_digest = await api.http.put(
        out_url,
        content=b"text",
        headers={**api.auth("worker"), "X-Lease-Token": task["lease_token"], "X-Content-SHA256": "0" * 64},
    )
    assert bad_digest.status_code == 422
    put = await api.http.put(
        out_url,
        content=b"text",
        headers={
            **api.auth("worker"),
            "X-Lease-Token": task["lease_token"],
            "X-Content-SHA256": hashlib.sha256(b"text").hexdigest(),
        },
    )
    assert put.status_code == 201
    await api.complete(worker, task)
    late_put = await api.http.put(
        out_url, content=b"x", headers={**api.auth("worker"), "X-Lease-Token": task["lease_token"]}
    )
    assert late_put.status_code == 409
    got = await api.http.get(f"{API_PREFIX}/jobs/{job['id']}/outputs/result.txt", headers=api.auth("client"))
    assert got.content == b"text"
    assert got.headers["x-content-sha256"] == hashlib.sha256(b"text").hexdigest()


async def test_multipart_submit_with_files(api: Api) -> None:
    response = await api.http.post(
        f"{API_PREFIX}/jobs",
        data={"job": '{"type": "noop", "params": {"k": 1}}'},
        files=[("file", ("one.txt", b"first")), ("file", ("two.txt", b"second"))],
        headers=api.auth("client"),
    )
    assert response.status_code == 201, response.text
    job = response.json()["job"]
    assert [(f["name"], f["size"]) for f in job["inputs"]] == [("one.txt", 5), ("two.txt", 6)]


async def test_oversized_uploads_are_413_and_leave_nothing(api: Api) -> None:
    big = b"x" * (api.coord.settings.max_upload_bytes + 1)
    declared = await api.http.post(f"{API_PREFIX}/uploads", content=big, headers=api.auth("client"))
    assert declared.status_code == 413

    async def stream():  # no Content-Length: the limit is enforced while streaming
        for _ in range(3):
            yield b"y" * (api.coord.settings.max_upload_bytes // 2)

    streamed = await api.http.post(f"{API_PREFIX}/uploads", content=stream(), headers=api.auth("client"))
    assert streamed.status_code == 413
    assert streamed.json()["error"]["code"] == "payload_too_large"
    blob_dir = api.coord.settings.resolved_blob_dir()
    assert [p for p in blob_dir.rglob("*") if p.is_file()] == []


async def test_unknown_upload_id_is_refused(api: Api) -> None:
    body = await api.submit(expect=404, inputs=[{"name": "a.wav", "upload_id": "missing"}])
    assert body["error"]["code"] == "upload_not_found"


async def test_drain_stops_claims(api: Api) -> None:
    await api.submit()
    worker = await api.register()
    response = await api.http.post(f"{API_PREFIX}/workers/{worker}/drain", headers=api.auth("admin"))
    assert response.json()["draining"] is True
    reply = await api.http.post(
        f"{API_PREFIX}/workers/{worker}/claim", json={"wait_s": 0}, headers=api.auth("worker")
    )
    assert reply.status_code == 200 and reply.json() == {"tasks": [], "acks": [], "drain": True}
    assert (await api.heartbeat(worker))["drain"] is True
