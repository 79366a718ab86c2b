"""Submitting, reading, listing, cancelling and requeueing jobs, and the errors bad input gets."""

from __future__ import annotations

import pytest

from taskpost.protocol import API_PREFIX
from tests.server.conftest import Api

pytestmark = pytest.mark.anyio


async def test_submit_then_read_back(api: Api) -> None:
    job = await api.submit(params={"x": 1}, priority="high", max_attempts=5, meta={"owner": "me"})
    assert job["state"] == "queued"
    assert job["priority"] == "high"
    assert job["attempts"] == 0 and job["max_attempts"] == 5
    again = await api.job(job["id"])
    assert again["params"] == {"x": 1}
    assert again["meta"] == {"owner": "me"}
    assert again["created_at"] == job["created_at"]


async def test_same_idempotency_key_returns_the_first_job(api: Api) -> None:
    first = await api.submit(idempotency_key="order-7", params={"n": 1})
    second = await api.submit(expect=200, idempotency_key="order-7", params={"n": 2})
    assert second["id"] == first["id"]
    assert second["params"] == {"n": 1}
    page = (await api.http.get(f"{API_PREFIX}/jobs", headers=api.auth("client"))).json()
    assert len(page["jobs"]) == 1


async def test_batch_submit_dedupes_keys_within_the_batch(api: Api) -> None:
    body = {
        "jobs": [
            {"type": "noop", "idempotency_key": "k"},
            {"type": "noop", "idempotency_key": "k"},
            {"type": "noop"},
        ]
    }
    response = await api.http.post(f"{API_PREFIX}/jobs/batch", json=body, headers=api.auth("client"))
    assert response.status_code == 201
    results = response.json()["jobs"]
    assert [r["created"] for r in results] == [True, False, True]
    assert results[0]["job"]["id"] == results[1]["job"]["id"] != results[2]["job"]["id"]


async def test_unknown_type_lists_the_known_ones(api: Api) -> None:
    body = await api.submit(expect=422, type="transcribe-typo")
    assert body["error"]["code"] == "unknown_job_type"
    assert "noop" in body["error"]["details"]["known_types"]
    assert "transcribe-typo" in body["error"]["message"]


async def test_a_type_declared_by_an_agent_becomes_known(api: Api) -> None:
    await api.submit(expect=422, type="resize")
    await api.register(task_types=["resize"])
    job = await api.submit(type="resize")
    assert job["type"] == "resize"


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"type": "noop", "priority": "urgent"}, "priority"),
        ({"type": "noop", "max_attempts": 0}, "max_attempts"),
        ({"type": "noop", "timeout_s": -1}, "timeout_s"),
        ({"type": "noop", "params": [1, 2]}, "params"),
        ({"params": {}}, "type"),
    ],
)
async def test_invalid_fields_are_named(api: Api, spec: dict[str, object], field: str) -> None:
    response = await api.http.post(f"{API_PREFIX}/jobs", json=spec, headers=api.auth("client"))
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "invalid_params"
    assert field in [e["field"] for e in error["details"]["errors"]]


async def test_malformed_json_is_a_422(api: Api) -> None:
    response = await api.http.post(
        f"{API_PREFIX}/jobs",
        content=b"{not json",
        headers={**api.auth("client"), "content-type": "application/json"},
    )
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_params"


async def test_unknown_job_is_a_404(api: Api) -> None:
    for path in ("", "/events", "/outputs/x.txt"):
        response = await api.http.get(f"{API_PREFIX}/jobs/does-not-exist{path}", headers=api.auth("client"))
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "job_not_found"
    response = await api.http.post(f"{API_PREFIX}/jobs/does-not-exist/cancel", headers=api.auth("client"))
    assert response.status_code == 404


async def test_list_filters_and_pages(api: Api) -> None:
    ids = [(await api.submit(params={"i": i}))["id"] for i in range(5)]
    worker = await api.register()
    [task] = await api.claim(worker)
    await api.complete(worker, task)
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 2, "state": "queued", **({"cursor": cursor} if cursor else {})}
        page = (await api.http.get(f"{API_PREFIX}/jobs", params=params, headers=api.auth("client"))).json()
        seen += [job["id"] for job in page["jobs"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(ids[1:]))  # newest first, the completed one filtered out


async def test_cancel_a_queued_job(api: Api) -> None:
    job = await api.submit()
    response = await api.http.post(f"{API_PREFIX}/jobs/{job['id']}/cancel", headers=api.auth("client"))
    assert response.status_code == 200
    assert response.json()["state"] == "cancelled"
    worker = await api.register()
    assert await api.claim(worker) == []
    again = await api.http.post(f"{API_PREFIX}/jobs/{job['id']}/cancel", headers=api.auth("client"))
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "invalid_state"


async def test_requeue_only_ended_jobs(api: Api) -> None:
    job = await api.submit()
    response = await api.http.post(f"{API_PREFIX}/jobs/{job['id']}/requeue", headers=api.auth("client"))
    assert response.status_code == 409
    await api.http.post(f"{API_PREFIX}/jobs/{job['id']}/cancel", headers=api.auth("client"))
    response = await api.http.post(f"{API_PREFIX}/jobs/{job['id']}/requeue", headers=api.auth("client"))
    assert response.status_code == 200
    assert response.json()["state"] == "queued"
    assert [e["kind"] for e in await api.events(job["id"])] == ["cancel_requested", "requeued"]


async def test_local_path_jobs_must_name_a_files_root(api: Api) -> None:
    missing = await api.submit(expect=422, params={"local_path": "/srv/media/a.wav"})
    assert missing["error"]["details"]["field"] == "params.local_path"
    assert "files roots known: none" in missing["error"]["message"]
    relative = await api.submit(expect=422, params={"local_path": "a.wav"}, labels=["files-root:/srv"])
    assert relative["error"]["details"]["field"] == "params.local_path"
    elsewhere = await api.submit(
        expect=422, params={"local_path": "/etc/passwd"}, labels=["files-root:/srv/media"]
    )
    assert elsewhere["error"]["code"] == "invalid_params"
    job = await api.submit(params={"local_path": "/srv/media/a.wav"}, labels=["files-root:/srv/media"])
    plain = await api.register(labels=["eu"])
    assert await api.claim(plain) == []  # routed only to agents holding the root
    holder = await api.register(labels=["files-root:/srv/media"])
    assert [t["job_id"] for t in await api.claim(holder)] == [job["id"]]


async def test_a_job_nobody_runs_yet_says_which_extra_agents_need(api: Api) -> None:
    response = await api.http.post(
        f"{API_PREFIX}/jobs", json={"type": "transcription"}, headers=api.auth("client")
    )
    assert response.status_code == 201
    [warning] = response.json()["warnings"]
    assert "taskpost[stt]" in warning
    await api.register(task_types=["transcription"])
    again = await api.http.post(
        f"{API_PREFIX}/jobs", json={"type": "transcription"}, headers=api.auth("client")
    )
    assert again.json()["warnings"] == []
