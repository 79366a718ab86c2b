"""Validation at the edge: what no request may carry in, and that a refused request commits nothing.

Bodies are sent as raw JSON text: ``"\\ud800"``, ``NaN`` and ``1e400`` are what a client can put on
the wire, and what Python's JSON reader accepts without complaint.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from taskpost.protocol import API_PREFIX
from taskpost.server.settings import Settings
from tests.server.conftest import Api, ManualClock, running_api

pytestmark = pytest.mark.anyio

JSON = {"Content-Type": "application/json"}
LONE_SURROGATE = '"\\ud800"'
"""A JSON string holding one lone UTF-16 surrogate, as it appears on the wire."""


def _bad(template: str) -> str:
    """``template`` with its ``@`` replaced by the lone surrogate."""
    return template.replace("@", LONE_SURROGATE)


def _fields(response: Any) -> list[str]:
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error"]["code"] == "invalid_params"
    return [problem["field"] for problem in body["error"]["details"]["errors"]]


async def _post(api: Api, path: str, raw: str, role: str = "client") -> Any:
    return await api.http.post(
        f"{API_PREFIX}{path}", content=raw.encode(), headers={**api.auth(role), **JSON}
    )


async def _job_count(api: Api) -> int:
    response = await api.http.get(f"{API_PREFIX}/jobs", headers=api.auth("admin"))
    assert response.status_code == 200, response.text
    return len(response.json()["jobs"])


def _single_and_batch(job: str) -> list[tuple[str, str, str]]:
    """(path, body, field prefix) for submitting ``job`` alone and inside a batch."""
    return [("/jobs", job, ""), ("/jobs/batch", f'{{"jobs": [{{"type": "noop"}}, {job}]}}', "jobs.1.")]


UNSENDABLE_JOBS = [
    (_bad('{"type": "noop", "params": {"a": {"b": @}}}'), "params.a.b"),
    (_bad('{"type": "noop", "params": {"list": [1, @]}}'), "params.list.1"),
    (_bad('{"type": "noop", "meta": {"owner": @}}'), "meta.owner"),
    ('{"type": "noop", "params": {"\\ud800": 1}}', "params.\\ud800"),
    (_bad('{"type": "noop", "labels": [@]}'), "labels.0"),
    (_bad('{"type": "noop", "idempotency_key": @}'), "idempotency_key"),
    ('{"type": "noop", "params": {"a": NaN}}', "params.a"),
    ('{"type": "noop", "params": {"a": [Infinity]}}', "params.a.0"),
    ('{"type": "noop", "meta": {"a": -Infinity}}', "meta.a"),
    ('{"type": "noop", "params": {"a": 1e400}}', "params.a"),
]


@pytest.mark.parametrize(
    ("path", "raw", "field"),
    [
        (path, body, prefix + field)
        for job, field in UNSENDABLE_JOBS
        for path, body, prefix in _single_and_batch(job)
    ],
)
async def test_unsendable_text_or_number_is_a_422_naming_it_and_nothing_is_committed(
    api: Api, path: str, raw: str, field: str
) -> None:
    assert field in _fields(await _post(api, path, raw))
    assert await _job_count(api) == 0


@pytest.mark.parametrize(
    ("path", "raw", "field"),
    [
        ("/jobs", '{"type": "noop", "priorty": "high"}', "priorty"),
        ("/jobs/batch", '{"jobs": [{"type": "noop", "priorty": "high"}]}', "jobs.0.priorty"),
        ("/jobs/batch", '{"jobs": [{"type": "noop"}], "atomic": true}', "atomic"),
        ("/jobs", '{"type": "noop", "retry": {"base_s": 1, "cap": 5}}', "retry.cap"),
        (
            "/jobs",
            '{"type": "noop", "inputs": [{"name": "a", "upload_id": "u", "sha": "x"}]}',
            "inputs.0.sha",
        ),
    ],
)
async def test_an_unknown_field_is_a_422_naming_it_never_ignored(
    api: Api, path: str, raw: str, field: str
) -> None:
    assert field in _fields(await _post(api, path, raw))
    assert await _job_count(api) == 0


@pytest.mark.parametrize(
    ("path", "role", "body", "field"),
    [
        ("/workers/register", "worker", {"task_types": ["noop"], "maxconcurrent": 2}, "maxconcurrent"),
        ("/keys", "admin", {"role": "client", "namespace": "acme"}, "namespace"),
    ],
)
async def test_unknown_fields_are_refused_on_agent_and_admin_routes(
    api: Api, path: str, role: str, body: dict[str, Any], field: str
) -> None:
    assert field in _fields(await _post(api, path, json.dumps(body), role))


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"max_attempts": True}, "max_attempts"),
        ({"max_attempts": 2.5}, "max_attempts"),
        ({"max_attempts": "2"}, "max_attempts"),
        ({"timeout_s": True}, "timeout_s"),
        ({"timeout_s": "60"}, "timeout_s"),
        ({"retry": {"jitter": 1}}, "retry.jitter"),
        ({"retry": {"base_s": False}}, "retry.base_s"),
    ],
)
async def test_booleans_and_numbers_are_not_coerced_into_each_other(
    api: Api, spec: dict[str, Any], field: str
) -> None:
    assert field in _fields(await _post(api, "/jobs", json.dumps({"type": "noop", **spec})))
    assert await _job_count(api) == 0


async def test_a_float_field_still_takes_an_integer(api: Api) -> None:
    job = await api.submit(timeout_s=60, retry={"base_s": 2, "factor": 3, "cap_s": 10, "jitter": False})
    assert job["timeout_s"] == 60


async def test_agent_bodies_are_strict_too(api: Api) -> None:
    worker_id = await api.register()
    claim = await _post(api, f"/workers/{worker_id}/claim", '{"max_tasks": true}', "worker")
    assert "max_tasks" in _fields(claim)
    register = await _post(
        api, "/workers/register", '{"task_types": ["noop"], "max_concurrent": 2.5}', "worker"
    )
    assert "max_concurrent" in _fields(register)


async def test_an_integer_field_takes_a_number_without_a_fraction(api: Api) -> None:
    # JSON (and JSON Schema's "integer", which the OpenAPI document declares) does not tell 2
    # from 2.0: both are the integer 2.
    job = await api.submit(max_attempts=2.0)
    assert job["max_attempts"] == 2
    register = await _post(
        api, "/workers/register", '{"task_types": ["noop"], "max_concurrent": 2.0}', "worker"
    )
    assert register.status_code == 201, register.text
    worker_id = register.json()["worker_id"]
    claim = await _post(api, f"/workers/{worker_id}/claim", '{"max_tasks": 1.0, "wait_s": 0}', "worker")
    assert claim.status_code in (200, 204), claim.text


async def _claimed(api: Api) -> tuple[str, dict[str, Any]]:
    job = await api.submit()
    worker_id = await api.register()
    [task] = await api.claim(worker_id)
    assert task["job_id"] == job["id"]
    return worker_id, task


@pytest.mark.parametrize(
    ("result", "field"),
    [
        (_bad('{"text": @}'), "completions.0.result.text"),
        ('{"score": NaN}', "completions.0.result.score"),
        ("[1e400]", "completions.0.result.0"),
    ],
)
async def test_a_result_that_cannot_be_stored_is_refused_and_the_task_stays_held(
    api: Api, result: str, field: str
) -> None:
    worker_id, task = await _claimed(api)
    completion = (
        f'{{"job_id": "{task["job_id"]}", "lease_token": "{task["lease_token"]}", '
        f'"outcome": "succeeded", "result": {result}}}'
    )
    response = await _post(
        api, f"/workers/{worker_id}/complete", f'{{"completions": [{completion}]}}', "worker"
    )
    assert field in _fields(response)
    job = await api.job(task["job_id"])
    assert (job["state"], job["result"]) == ("processing", None)


async def test_an_unsendable_progress_message_is_refused(api: Api) -> None:
    worker_id, task = await _claimed(api)
    beat = (
        f'{{"tasks": [{{"job_id": "{task["job_id"]}", "lease_token": "{task["lease_token"]}", '
        f'"progress": 0.5, "message": {LONE_SURROGATE}}}]}}'
    )
    response = await _post(api, f"/workers/{worker_id}/heartbeat", beat, "worker")
    assert "tasks.0.message" in _fields(response)
    assert (await api.job(task["job_id"]))["progress_message"] is None


@pytest.mark.parametrize(
    ("path", "role", "raw", "field"),
    [
        ("/workers/register", "worker", _bad('{"task_types": ["noop"], "name": @}'), "name"),
        ("/workers/register", "worker", _bad('{"task_types": ["noop"], "labels": [@]}'), "labels.0"),
        ("/keys", "admin", _bad('{"role": "client", "name": @}'), "name"),
    ],
)
async def test_unsendable_names_are_refused(api: Api, path: str, role: str, raw: str, field: str) -> None:
    assert field in _fields(await _post(api, path, raw, role))
    listing = "/workers" if path.startswith("/workers") else "/keys"
    assert (await api.http.get(f"{API_PREFIX}{listing}", headers=api.auth("admin"))).status_code == 200


@pytest.mark.parametrize("name", [".", "..", "a\nb", "tab\there", "bell\x07", "del\x7f", "a/b", "a\\b", ""])
async def test_input_names_an_agent_would_refuse_are_refused_at_submit(api: Api, name: str) -> None:
    upload = await api.http.post(
        f"{API_PREFIX}/uploads", params={"name": "in.txt"}, content=b"data", headers=api.auth("client")
    )
    assert upload.status_code == 201, upload.text
    job = {"type": "noop", "inputs": [{"name": name, "upload_id": upload.json()["upload_id"]}]}
    for path, raw, prefix in _single_and_batch(json.dumps(job)):
        assert f"{prefix}inputs.0.name" in _fields(await _post(api, path, raw))
    assert await _job_count(api) == 0


@pytest.mark.parametrize(
    "task_types", [["Transcription"], ["1ocr"], ["has space"], ["x" * 65], ["ok", ""], ["../x"]]
)
async def test_an_agent_cannot_declare_a_type_that_is_not_an_identifier(
    api: Api, task_types: list[str]
) -> None:
    response = await _post(api, "/workers/register", json.dumps({"task_types": task_types}), "worker")
    assert any(field.startswith("task_types") for field in _fields(response))


@pytest.mark.parametrize(
    "body",
    [
        {"task_types": ["noop"], "labels": [f"l{i}" for i in range(65)]},
        {"task_types": ["noop"], "labels": ["x" * 1025]},
        {"task_types": [f"t{i}" for i in range(257)]},
        {"task_types": ["noop"], "host": "h" * 256},
    ],
)
async def test_registration_lists_and_texts_are_bounded(api: Api, body: dict[str, Any]) -> None:
    assert _fields(await _post(api, "/workers/register", json.dumps(body), "worker"))


async def test_405_says_which_methods_the_path_allows(api: Api) -> None:
    response = await api.http.delete(f"{API_PREFIX}/jobs", headers=api.auth("client"))
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"
    assert {m.strip() for m in response.headers["allow"].split(",")} == {"GET", "POST"}


@pytest.mark.parametrize(
    ("path", "allowed"),
    [
        # Each is also a value of a sibling templated path (/jobs/{job_id}, /workers/{worker_id}).
        ("/jobs/batch", {"POST"}),
        ("/workers/register", {"POST"}),
        ("/jobs/some-job", {"GET", "POST"}),  # POST: the short form of a submit
        ("/workers/some-agent", {"DELETE"}),
    ],
)
async def test_405_names_the_methods_of_the_path_itself(api: Api, path: str, allowed: set[str]) -> None:
    response = await api.http.request("PATCH", API_PREFIX + path, headers=api.auth("admin"))
    assert response.status_code == 405
    assert {m.strip() for m in response.headers["allow"].split(",")} == allowed


# -- body size ------------------------------------------------------------------------------

JSON_LIMIT = 4096


@pytest.fixture
async def small_api(settings: Settings, clock: ManualClock) -> AsyncIterator[Api]:
    async with running_api(settings.model_copy(update={"max_json_bytes": JSON_LIMIT}), clock) as api:
        yield api


def _batch_of(size: int) -> bytes:
    """A valid batch body of exactly ``size`` bytes."""
    head, tail = b'{"jobs": [{"type": "noop", "params": {"pad": "', b'"}}]}'
    return head + b"x" * (size - len(head) - len(tail)) + tail


async def _chunks(body: bytes, chunk: int = 1000) -> AsyncIterator[bytes]:
    for start in range(0, len(body), chunk):
        yield body[start : start + chunk]


async def test_a_json_body_at_the_limit_is_read(small_api: Api) -> None:
    response = await small_api.http.post(
        f"{API_PREFIX}/jobs/batch",
        content=_batch_of(JSON_LIMIT),
        headers={**small_api.auth("client"), **JSON},
    )
    assert response.status_code == 201, response.text


@pytest.mark.parametrize("path", ["/jobs", "/jobs/batch", "/workers/register"])
@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
async def test_a_json_body_over_the_limit_is_a_413_and_nothing_is_committed(
    small_api: Api, path: str, declared: bool
) -> None:
    body = _batch_of(JSON_LIMIT + 1)
    role = "worker" if path.startswith("/workers") else "client"
    content: bytes | AsyncIterator[bytes] = body if declared else _chunks(body)
    response = await small_api.http.post(
        f"{API_PREFIX}{path}", content=content, headers={**small_api.auth(role), **JSON}
    )
    assert response.status_code == 413, response.text
    error = response.json()["error"]
    assert error["code"] == "payload_too_large"
    assert error["details"]["limit"] == JSON_LIMIT
    assert await _job_count(small_api) == 0


async def test_a_chunked_body_is_not_read_past_the_limit(small_api: Api) -> None:
    sent = 0

    async def endless() -> AsyncIterator[bytes]:
        nonlocal sent
        while sent < 100 * JSON_LIMIT:
            sent += 1000
            yield b" " * 1000

    response = await small_api.http.post(
        f"{API_PREFIX}/jobs/batch", content=endless(), headers={**small_api.auth("client"), **JSON}
    )
    assert response.status_code == 413
    assert sent <= JSON_LIMIT + 1000


async def test_an_unauthenticated_body_is_not_read_at_all(small_api: Api) -> None:
    sent = 0

    async def body() -> AsyncIterator[bytes]:
        nonlocal sent
        for _ in range(3):
            sent += 1
            yield b"{}"

    response = await small_api.http.post(
        f"{API_PREFIX}/jobs/batch", content=body(), headers={"Authorization": "Bearer wrong", **JSON}
    )
    assert response.status_code == 401
    assert sent == 0


async def test_file_routes_keep_the_upload_limit(small_api: Api) -> None:
    data = b"x" * (JSON_LIMIT * 4)
    upload = await small_api.http.post(
        f"{API_PREFIX}/uploads", params={"name": "a.bin"}, content=data, headers=small_api.auth("client")
    )
    assert upload.status_code == 201, upload.text
    spec = json.dumps({"type": "noop"})
    multipart = await small_api.http.post(
        f"{API_PREFIX}/jobs",
        data={"job": spec},
        files={"file": ("b.bin", data)},
        headers=small_api.auth("client"),
    )
    assert multipart.status_code == 201, multipart.text
    assert [f["name"] for f in multipart.json()["job"]["inputs"]] == ["b.bin"]


async def test_an_upload_over_the_upload_limit_is_a_413_while_streaming(small_api: Api) -> None:
    limit = small_api.coord.settings.max_upload_bytes
    response = await small_api.http.post(
        f"{API_PREFIX}/uploads",
        params={"name": "big.bin"},
        content=_chunks(b"x" * (limit + 1), chunk=64 * 1024),
        headers=small_api.auth("client"),
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
