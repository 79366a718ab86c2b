"""Jobs that name a file on an agent's machine (``params.local_path``) without a files-root label,
and the short form of a submit (``POST /jobs/{type}`` with the params as the body)."""

from __future__ import annotations

from typing import Any

import pytest

from taskpost.protocol import API_PREFIX
from tests.server.conftest import Api

pytestmark = pytest.mark.anyio

SAMPLE = "samples/sample.pdf"


async def _agent(api: Api, *roots: str, task_types: tuple[str, ...] = ("noop",)) -> str:
    return await api.register(task_types=list(task_types), labels=[f"files-root:{root}" for root in roots])


async def _release(api: Api, worker: str, task: dict[str, Any], reason: str = "declined") -> dict[str, Any]:
    body = {"tasks": [{"job_id": task["job_id"], "lease_token": task["lease_token"]}], "reason": reason}
    response = await api.http.post(
        f"{API_PREFIX}/workers/{worker}/release", json=body, headers=api.auth("worker")
    )
    assert response.status_code == 200, response.text
    [ack] = response.json()["acks"]
    assert ack["accepted"], ack
    return ack


async def _claimed(api: Api, worker: str) -> list[str]:
    return [task["job_id"] for task in await api.claim(worker)]


async def test_an_absolute_path_goes_to_the_agent_whose_root_holds_it(api: Api) -> None:
    first = await _agent(api, "/srv/a")
    second = await _agent(api, "/srv/b")
    job = await api.submit(params={"local_path": "/srv/b/talk.wav"})
    assert job["labels"] == ["files-root:/srv/b"]
    assert await _claimed(api, first) == []
    assert await _claimed(api, second) == [job["id"]]


async def test_the_root_most_live_agents_share_is_chosen(api: Api) -> None:
    shared = [await _agent(api, "/data") for _ in range(2)]
    deep = await _agent(api, "/data/deep")
    # Labels the submit gives still apply: no agent carries "eu" here, so no root is found.
    refused = await api.submit(expect=422, params={"local_path": "/data/deep/a.wav"}, labels=["eu"])
    assert refused["error"]["details"]["field"] == "params.local_path"
    job = await api.submit(params={"local_path": "/data/deep/a.wav"})
    assert job["labels"] == ["files-root:/data"]
    assert await _claimed(api, deep) == []
    assert await _claimed(api, shared[1]) == [job["id"]]


async def test_a_path_under_no_known_root_is_refused_naming_the_roots(api: Api) -> None:
    await _agent(api, "/srv/a")
    await _agent(api, "/srv/b")
    await _agent(api, "/elsewhere", task_types=("ocr",))  # another type: not a root for noop
    refused = await api.submit(expect=422, params={"local_path": "/elsewhere/x.pdf"})
    error = refused["error"]
    assert error["code"] == "invalid_params"
    assert error["details"]["field"] == "params.local_path"
    assert error["details"]["roots"] == ["/srv/a", "/srv/b"]
    assert "/srv/a, /srv/b" in error["message"] and "--files-root" in error["message"]


async def test_agents_that_went_silent_do_not_count(api: Api) -> None:
    await _agent(api, "/srv/a")
    api.clock.advance(api.coord.settings.worker_gone_s + 1)
    refused = await api.submit(expect=422, params={"local_path": "/srv/a/x.wav"})
    assert "files roots known: none" in refused["error"]["message"]
    relative = await api.submit(expect=422, params={"local_path": "x.wav"})
    assert relative["error"]["details"]["field"] == "params.local_path"


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("../etc/passwd", "may not contain '..'"),
        ("samples/../../x", "may not contain '..'"),
        ("/srv/a/../../etc/passwd", "may not contain '..'"),
        ("~/x", "'~' is not expanded"),
        ("", "must be a non-empty path"),
    ],
)
async def test_paths_that_could_leave_a_root_are_refused(api: Api, path: str, message: str) -> None:
    await _agent(api, "/srv/a")
    refused = await api.submit(expect=422, params={"local_path": path})
    assert refused["error"]["details"]["field"] == "params.local_path", refused
    assert message in refused["error"]["message"]


async def test_explicit_files_root_labels_work_as_before(api: Api) -> None:
    # A live agent's broader root does not change a root the submit names itself.
    broader = await _agent(api, "/srv")
    job = await api.submit(params={"local_path": "/srv/media/a.wav"}, labels=["files-root:/srv/media"])
    assert job["labels"] == ["files-root:/srv/media"]
    elsewhere = await api.submit(
        expect=422, params={"local_path": "/etc/passwd"}, labels=["files-root:/srv/media"]
    )
    assert elsewhere["error"]["details"]["field"] == "labels"
    holder = await _agent(api, "/srv/media")
    assert await _claimed(api, broader) == []
    assert await _claimed(api, holder) == [job["id"]]
    # Without the label the coordinator picks a root: one agent each, so the deepest.
    routed = await api.submit(params={"local_path": "/srv/media/b.wav"})
    assert routed["labels"] == ["files-root:/srv/media"]


async def test_a_relative_path_needs_a_live_agent_with_a_files_root(api: Api) -> None:
    await api.register(task_types=["noop"])
    refused = await api.submit(expect=422, params={"local_path": SAMPLE})
    assert refused["error"]["details"]["field"] == "params.local_path"
    assert "files roots known: none" in refused["error"]["message"]
    await _agent(api, "/srv/a")
    job = await api.submit(params={"local_path": SAMPLE})
    assert job["labels"] == []


async def test_a_relative_path_declined_by_one_agent_runs_on_another(api: Api) -> None:
    lacking = await _agent(api, "/srv/a")
    holding = await _agent(api, "/srv/b")
    job = await api.submit(params={"local_path": SAMPLE}, max_attempts=1)
    [task] = await api.claim(lacking)
    assert task["attempt"] == 1
    ack = await _release(api, lacking, task)
    assert ack["state"] == "queued"
    declined = await api.job(job["id"])
    assert declined["state"] == "queued" and declined["attempts"] == 0
    assert await _claimed(api, lacking) == []  # never handed to an agent that declined
    [again] = await api.claim(holding)
    assert again["attempt"] == 1  # the decline used no attempt: max_attempts=1 still runs it
    assert (await api.complete(holding, again))["state"] == "completed"
    kinds = [(event["kind"], event["worker_id"]) for event in await api.events(job["id"])]
    assert ("declined", lacking) in kinds


async def test_when_every_live_agent_declines_the_job_is_dead_naming_the_roots(api: Api) -> None:
    first = await _agent(api, "/srv/a")
    second = await _agent(api, "/srv/b", "/srv/c")
    gone = await _agent(api, "/srv/gone")
    await api.http.delete(f"{API_PREFIX}/workers/{gone}", headers=api.auth("worker"))
    job = await api.submit(params={"local_path": SAMPLE})
    [task] = await api.claim(first)
    assert (await _release(api, first, task))["state"] == "queued"
    [task] = await api.claim(second)
    assert (await _release(api, second, task))["state"] == "dead"
    dead = await api.job(job["id"])
    assert dead["state"] == "dead" and dead["attempts"] == 0
    error = dead["error"]
    assert error["kind"] == "not_found" and error["retryable"] is False
    assert SAMPLE in error["message"]
    assert "/srv/a, /srv/b, /srv/c" in error["message"]
    assert "/srv/gone" not in error["message"]


async def test_a_plain_release_is_not_a_decline(api: Api) -> None:
    worker = await _agent(api, "/srv/a")
    job = await api.submit(params={"local_path": SAMPLE})
    [task] = await api.claim(worker)
    assert (await _release(api, worker, task, reason="agent shutting down"))["state"] == "queued"
    assert await _claimed(api, worker) == [job["id"]]


async def _short(api: Api, path: str, expect: int, **kwargs: Any) -> dict[str, Any]:
    response = await api.http.post(f"{API_PREFIX}/jobs/{path}", headers=api.auth("client"), **kwargs)
    assert response.status_code == expect, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_the_short_form_submits_the_body_as_params(api: Api) -> None:
    body = await _short(
        api,
        "noop",
        201,
        json={"x": 1, "nested": {"y": [1, 2]}},
        params={"priority": "high", "labels": ["eu", "gpu"], "max_attempts": 5, "timeout_s": 2.5},
    )
    job = body["job"]
    assert body["created"] is True
    assert job["type"] == "noop" and job["params"] == {"x": 1, "nested": {"y": [1, 2]}}
    assert job["priority"] == "high" and job["labels"] == ["eu", "gpu"]
    assert job["max_attempts"] == 5 and job["timeout_s"] == 2.5
    empty = await _short(api, "noop", 201, content=b"")
    assert empty["job"]["params"] == {}
    first = await _short(api, "noop", 201, json={}, params={"idempotency_key": "k1"})
    again = await _short(api, "noop", 200, json={"n": 2}, params={"idempotency_key": "k1"})
    assert again["job"]["id"] == first["job"]["id"] and again["created"] is False


async def test_the_short_form_routes_local_paths_too(api: Api) -> None:
    await _agent(api, "/srv/a", task_types=("ocr",))
    body = await _short(api, "ocr", 201, json={"local_path": SAMPLE})
    assert body["job"]["type"] == "ocr" and body["job"]["params"] == {"local_path": SAMPLE}


async def test_the_short_form_warns_like_the_generic_submit(api: Api) -> None:
    body = await _short(api, "transcription", 201, json={})
    assert "taskpost[stt]" in body["warnings"][0]


@pytest.mark.parametrize(
    ("path", "kwargs", "field"),
    [
        ("noop", {"json": [1, 2]}, "body"),
        ("noop", {"content": b"{not json", "headers": {"content-type": "application/json"}}, "body"),
        ("noop", {"json": {}, "params": {"timeout_s": -1}}, "timeout_s"),
        ("noop", {"json": {}, "params": {"priority": "urgent"}}, "priority"),
        ("noop", {"json": {}, "params": {"priorty": "high"}}, "priorty"),
        ("Not-A-Type", {"json": {}}, "type"),
    ],
)
async def test_the_short_form_refuses_bad_input_naming_the_field(
    api: Api, path: str, kwargs: dict[str, Any], field: str
) -> None:
    kwargs.setdefault("headers", {})
    kwargs["headers"].update(api.auth("client"))
    response = await api.http.post(f"{API_PREFIX}/jobs/{path}", **kwargs)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    fields = [error["details"].get("field")] + [e["field"] for e in error["details"].get("errors", [])]
    assert any(f is not None and f.endswith(field) for f in fields), error


async def test_the_short_form_of_an_unknown_type_is_refused(api: Api) -> None:
    body = await _short(api, "nosuchtype", 422, json={})
    assert body["error"]["code"] == "unknown_job_type"


async def test_batch_stays_the_batch_endpoint_and_is_no_type_name(api: Api) -> None:
    response = await api.http.post(
        f"{API_PREFIX}/workers/register", json={"task_types": ["batch"]}, headers=api.auth("worker")
    )
    assert response.status_code == 422, response.text
    assert "batch" in response.json()["error"]["message"]
    batch = await _short(api, "batch", 201, json={"jobs": [{"type": "noop", "params": {"n": 1}}]})
    assert [job["job"]["params"] for job in batch["jobs"]] == [{"n": 1}]
