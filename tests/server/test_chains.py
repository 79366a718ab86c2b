"""Chained jobs: ``then`` steps become jobs when their parent completes; ``from_job`` params."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from taskpost.agent.handlers.params import NoopParams
from taskpost.protocol import API_PREFIX
from taskpost.server.services import submissions
from tests.server.blobs_helpers import output, put_output, refs, upload_id
from tests.server.conftest import Api, HoldSeen
from tests.server.test_dashboard_html import browser, sign_in

pytestmark = pytest.mark.anyio

TEXT = b"hello from the parent"
STEP = {"type": "noop", "params": {"note": "next"}}


async def _run(
    api: Api, worker: str, job_id: str, files: dict[str, bytes] | None = None, **completion: Any
) -> dict[str, Any]:
    """Claim ``job_id``, upload ``files`` as its outputs and complete it; returns the ack."""
    [task] = await api.claim(worker)
    assert task["job_id"] == job_id
    for name, data in (files or {}).items():
        assert (await put_output(api, task, name, data)).status_code == 201
    return await api.complete(worker, task, **completion)


async def _input(api: Api, task: dict[str, Any], name: str) -> bytes:
    response = await api.http.get(
        f"{API_PREFIX}/tasks/{task['job_id']}/inputs/{name}",
        headers={**api.auth("worker"), "X-Lease-Token": task["lease_token"]},
    )
    assert response.status_code == 200, response.text
    return response.content


def _kinds(events: list[dict[str, Any]]) -> list[str]:
    return [event["kind"] for event in events]


async def test_a_completed_job_creates_its_steps_once_with_its_outputs_as_inputs(api: Api) -> None:
    worker = await api.register()
    nested = {**STEP, "priority": "high", "then": [{"type": "noop", "meta": {"depth": 2}}]}
    parent = await api.submit(priority="low", then=[nested, STEP])
    assert parent["then"][0]["then"][0]["meta"] == {"depth": 2}
    assert parent["children"] == [] and parent["parent_id"] is None

    assert (await _run(api, worker, parent["id"], {"out.txt": TEXT}))["state"] == "completed"
    done = await api.job(parent["id"])
    first, second = done["children"]
    assert "children_created" in _kinds(await api.events(parent["id"]))
    child = await api.job(first)
    assert child["parent_id"] == parent["id"] and child["state"] == "queued"
    assert child["priority"] == "high" and (await api.job(second))["priority"] == "low"  # the parent's
    assert child["inputs"] == done["outputs"] and child["params"] == {"note": "next"}
    assert child["then"] == parent["then"][0]["then"] and done["then"] == []
    assert _kinds(await api.events(first)) == ["chained"]
    stream = await api.http.get(
        f"{API_PREFIX}/jobs/{first}/events", params={"all": "true"}, headers=api.auth("client")
    )
    assert [event["data"] for event in stream.json() if event["kind"] == "state"] == [{"state": "queued"}]
    assert list((await refs(api)).values()) == [3]  # the parent's output, and each child's input

    # The child runs with the parent's output as its input; its own step comes after it.
    [task] = await api.claim(worker)
    assert task["job_id"] == first
    assert await _input(api, task, "out.txt") == TEXT
    assert (await api.complete(worker, task))["state"] == "completed"
    [grandchild] = (await api.job(first))["children"]
    grand = await api.job(grandchild)
    assert grand["parent_id"] == first and grand["meta"] == {"depth": 2} and grand["inputs"] == []
    assert grand["priority"] == "high"  # its parent's
    assert len(await _all_jobs(api)) == 4

    # The dashboard's job page links both ways.
    async with browser(api) as client:
        await sign_in(client, api.keys["client"])
        page = (await client.get(f"/dashboard/jobs/{first}")).text
    assert f'href="/dashboard/jobs/{parent["id"]}"' in page
    assert f'href="/dashboard/jobs/{grandchild}"' in page


async def _all_jobs(api: Api) -> list[dict[str, Any]]:
    response = await api.http.get(f"{API_PREFIX}/jobs", params={"limit": 100}, headers=api.auth("client"))
    assert response.status_code == 200, response.text
    jobs: list[dict[str, Any]] = response.json()["jobs"]
    return jobs


async def test_a_concurrent_double_completion_and_a_stale_one_create_the_steps_once(api: Api) -> None:
    worker = await api.register()
    parent = await api.submit(then=[STEP], idempotency_key="once")
    [old] = await api.claim(worker)
    api.clock.advance(api.coord.settings.lease_s + 1)
    assert await api.reap() == 1  # the lease is lost; the job is queued again
    [task] = await api.claim(worker)
    stale = await api.complete(worker, old)
    assert not stale["accepted"]
    acks = await asyncio.gather(api.complete(worker, task), api.complete(worker, task))
    assert [ack["state"] for ack in acks] == ["completed", "completed"]
    jobs = await _all_jobs(api)
    assert len(jobs) == 2
    [child] = [job for job in jobs if job["parent_id"] == parent["id"]]
    assert (await api.job(parent["id"]))["children"] == [child["id"]]
    again = await api.submit(expect=200, then=[STEP], idempotency_key="once")
    assert again["id"] == parent["id"] and len(await _all_jobs(api)) == 2


async def test_failed_dead_and_cancelled_jobs_create_no_steps_until_one_completes(api: Api) -> None:
    worker = await api.register()
    waiting = await api.submit(then=[STEP], max_attempts=3)
    ack = await _run(api, worker, waiting["id"], outcome="failed", error_message="try again")
    assert ack["state"] == "failed"
    dead = await api.submit(then=[STEP], max_attempts=1)
    failure = {"outcome": "failed", "error_message": "no", "retryable": False}
    assert (await _run(api, worker, dead["id"], **failure))["state"] == "dead"
    cancelled = await api.submit(then=[STEP])
    response = await api.http.post(f"{API_PREFIX}/jobs/{cancelled['id']}/cancel", headers=api.auth("client"))
    assert response.status_code == 200, response.text
    # Asked to cancel while it runs, then completes anyway: its steps are dropped.
    running = await api.submit(then=[STEP])
    [task] = await api.claim(worker)
    await api.http.post(f"{API_PREFIX}/jobs/{running['id']}/cancel", headers=api.auth("client"))
    assert (await api.complete(worker, task))["state"] == "completed"
    assert "chain_dropped" in _kinds(await api.events(running["id"]))
    assert all(job["parent_id"] is None and job["children"] == [] for job in await _all_jobs(api))

    # A dead job requeued that then completes creates its steps.
    response = await api.http.post(f"{API_PREFIX}/jobs/{dead['id']}/requeue", headers=api.auth("client"))
    assert response.status_code == 200, response.text
    assert (await _run(api, worker, dead["id"]))["state"] == "completed"
    [child] = (await api.job(dead["id"]))["children"]
    assert (await api.job(child))["parent_id"] == dead["id"]


async def test_a_job_served_from_the_cache_creates_its_steps_at_once(api: Api, hold_seen: HoldSeen) -> None:
    worker = await api.register()
    inputs = [{"name": "in.txt", "upload_id": await upload_id(api, b"input")}]
    first = await api.submit(inputs=inputs, cache=True)
    await _run(api, worker, first["id"], {"out.txt": TEXT})
    held = asyncio.create_task(api.claim(worker, wait_s=api.coord.settings.long_poll_s))
    await asyncio.wait_for(hold_seen.seen.wait(), 10)

    inputs = [{"name": "in.txt", "upload_id": await upload_id(api, b"input")}]
    copy = await api.submit(inputs=inputs, cache=True, then=[STEP])
    assert copy["state"] == "completed" and copy["cached_from"] == first["id"]
    [child_id] = copy["children"]
    assert (await api.job(child_id))["inputs"] == copy["outputs"]
    # The agent waiting in a claim is woken for it, before its claim would time out.
    [task] = await asyncio.wait_for(held, api.coord.settings.long_poll_s - 1)
    assert task["job_id"] == child_id and await _input(api, task, "out.txt") == TEXT


async def test_cancelling_a_completed_job_cancels_the_steps_that_still_run(api: Api) -> None:
    worker = await api.register()
    parent = await api.submit(then=[{**STEP, "then": [STEP]}, STEP])
    await _run(api, worker, parent["id"])
    first, second = (await api.job(parent["id"]))["children"]
    [task] = await api.claim(worker)  # the first step runs, the second waits
    assert task["job_id"] == first

    url = f"{API_PREFIX}/jobs/{parent['id']}/cancel"
    response = await api.http.post(url, headers=api.auth("client"))
    assert response.status_code == 200, response.text
    assert response.json()["state"] == "completed"
    assert (await api.job(second))["state"] == "cancelled"
    assert (await api.job(first))["cancel_requested"] is True
    assert (await api.complete(worker, task))["state"] == "completed"  # it finished anyway
    assert (await api.job(first))["children"] == []  # its own step never runs
    assert "chain_dropped" in _kinds(await api.events(first))
    # Nothing left to cancel: a completed job is refused as before.
    assert (await api.http.post(url, headers=api.auth("client"))).status_code == 409


async def test_steps_and_from_job_params_are_refused_at_submit(api: Api) -> None:
    schema = {"version": "1", "params_schema": NoopParams.model_json_schema()}
    worker = await api.register(param_schemas={"noop": schema})
    body = await api.submit(expect=422, then=[{"type": "nosuchtype"}])
    assert body["error"]["code"] == "unknown_job_type"
    body = await api.submit(expect=422, then=[STEP, {"type": "noop", "params": {"sleep_s": "x"}}])
    assert body["error"]["details"]["field"] == "then[1].params.sleep_s"
    nested = {"type": "noop", "then": [{"type": "noop", "params": {"sleep_s": -1}}]}
    body = await api.submit(expect=422, then=[nested])
    assert body["error"]["details"]["field"] == "then[0].then[0].params.sleep_s"
    body = await api.submit(expect=422, then=[{"type": "noop", "params": {"local_path": "/data/a.wav"}}])
    assert body["error"]["details"]["field"] == "then[0].params.local_path"

    await api.register(task_types=["echo"])  # no schema: any params
    done = await api.submit()
    await _run(api, worker, done["id"], {"out.txt": TEXT})
    queued = await api.submit()
    other_namespace = await api.new_key("client", "elsewhere")
    refusals = {
        "no such job": ({"from_job": "nope", "output": "out.txt"}, "no job has id"),
        "not completed": ({"from_job": queued["id"], "output": "out.txt"}, "is queued"),
        "no such output": ({"from_job": done["id"], "output": "x.txt"}, "its outputs: out.txt"),
        "malformed": ({"from_job": done["id"]}, "must be"),
    }
    for what, (ref, message) in refusals.items():
        body = await api.submit(expect=422, type="echo", params={"text": ref})
        assert body["error"]["details"]["field"] == "params.text", what
        assert message in body["error"]["message"], what
        body = await api.submit(expect=422, then=[{"type": "echo", "params": {"text": ref}}])
        assert body["error"]["details"]["field"] == "then[0].params.text", what
    ref = {"from_job": done["id"], "output": "out.txt"}
    body = await api.submit(expect=422, headers=other_namespace, type="echo", params={"text": ref})
    assert "no job has id" in body["error"]["message"]
    clash = [{"name": "out.txt", "upload_id": await upload_id(api, b"mine", "out.txt")}]
    body = await api.submit(expect=422, inputs=clash, type="echo", params={"text": ref})
    assert "already has an input named 'out.txt'" in body["error"]["message"]
    assert len(await _all_jobs(api)) == 2  # nothing stored by a refused submit


async def test_a_from_job_param_becomes_an_input_of_the_new_job(api: Api) -> None:
    worker = await api.register()
    done = await api.submit()
    await _run(api, worker, done["id"], {"out.txt": TEXT})
    ref = {"from_job": done["id"], "output": "out.txt"}
    job = await api.submit(params={"text": ref}, then=[{"type": "noop", "params": {"again": ref}}])
    assert job["params"] == {"text": {"input": "out.txt"}}
    assert [entry["name"] for entry in job["inputs"]] == ["out.txt"]
    [task] = await api.claim(worker)
    assert await _input(api, task, "out.txt") == TEXT
    # The step resolves its reference when it is created, beside the parent's outputs.
    assert (await api.complete(worker, task))["state"] == "completed"
    [child_id] = (await api.job(job["id"]))["children"]
    child = await api.job(child_id)
    assert child["params"] == {"again": {"input": "out.txt"}} and child["state"] == "queued"
    assert (await output(api, done["id"], "out.txt")).content == TEXT
    assert list((await refs(api)).values()) == [3]  # the output, the job's input, the child's


async def test_a_step_whose_referenced_job_was_deleted_meanwhile_is_created_dead(api: Api) -> None:
    worker = await api.register()
    done = await api.submit()
    await _run(api, worker, done["id"], {"out.txt": TEXT})
    ref = {"from_job": done["id"], "output": "out.txt"}
    parent = await api.submit(then=[{"type": "noop", "params": {"text": ref}}])
    api.clock.advance(100)
    purge = {"states": ["completed"], "older_than_s": 50}
    response = await api.http.post(f"{API_PREFIX}/admin/purge", json=purge, headers=api.auth("admin"))
    assert response.status_code == 200, response.text

    await _run(api, worker, parent["id"])
    [child_id] = (await api.job(parent["id"]))["children"]
    child = await api.job(child_id)
    assert child["state"] == "dead" and child["error"]["kind"] == "invalid_params"
    assert "no job has id" in child["error"]["message"]


async def test_from_job_inputs_count_towards_the_input_cap(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    worker = await api.register()
    done = await api.submit()
    await _run(api, worker, done["id"], {"a.txt": TEXT, "b.txt": TEXT})
    monkeypatch.setattr(submissions, "MAX_INPUTS", 1)
    refs_to_both = {name: {"from_job": done["id"], "output": f"{name}.txt"} for name in ("a", "b")}
    body = await api.submit(expect=422, params=refs_to_both)
    error = body["error"]
    assert error["details"]["field"] == "inputs" and "at most 1 inputs" in error["message"], body
    assert (await api.submit(params={"a": refs_to_both["a"]}))["inputs"][0]["name"] == "a.txt"
