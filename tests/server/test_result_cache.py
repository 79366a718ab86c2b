"""The result cache: ``cache: true`` takes an equal completed job's result and outputs at once."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from taskpost.protocol import API_PREFIX
from taskpost.server.services.jobs import JOBS
from tests.server.blobs_helpers import collect, output, put_output, refs, upload_id
from tests.server.conftest import Api

pytestmark = pytest.mark.anyio

AUDIO = b"RIFF....WAVEfmt pretend this is speech"


async def _run(api: Api, worker: str, job_id: str, result: Any, files: dict[str, bytes]) -> None:
    """Claim ``job_id``, upload ``files`` as its outputs and complete it with ``result``."""
    [task] = await api.claim(worker)
    assert task["job_id"] == job_id
    for name, data in files.items():
        assert (await put_output(api, task, name, data)).status_code == 201
    assert (await api.complete(worker, task, result=result))["state"] == "completed"


async def _submit_audio(api: Api, **spec: Any) -> dict[str, Any]:
    """A job on a fresh upload of the same bytes (a new upload id each time)."""
    inputs = [{"name": "speech.wav", "upload_id": await upload_id(api, AUDIO, "speech.wav")}]
    return await api.submit(inputs=inputs, cache=True, params={"language": "en"}, **spec)


async def _purge_completed(api: Api, older_than_s: float) -> None:
    response = await api.http.post(
        f"{API_PREFIX}/admin/purge",
        json={"states": ["completed"], "older_than_s": older_than_s},
        headers=api.auth("admin"),
    )
    assert response.status_code == 200, response.text


async def test_the_same_upload_again_completes_at_once_from_the_cache(api: Api) -> None:
    worker = await api.register()
    first = await _submit_audio(api)
    assert first["state"] == "queued" and first["cached_from"] is None
    await _run(api, worker, first["id"], {"text": "hello"}, {"transcript.txt": b"hello"})

    second = await _submit_audio(api)
    assert second["state"] == "completed"
    assert second["cached_from"] == first["id"]
    assert second["attempts"] == 0 and second["started_at"] is None and second["worker_id"] is None
    assert second["result"] == {"text": "hello"}
    assert second["outputs"] == (await api.job(first["id"]))["outputs"]
    assert [event["kind"] for event in await api.events(second["id"])] == ["cached"]
    assert await api.claim(worker) == []  # nothing was queued
    assert (await output(api, second["id"], "transcript.txt")).content == b"hello"
    [kept], [shared] = await _output_blob_keys(api, first["id"]), await _output_blob_keys(api, second["id"])
    assert shared == kept and (await refs(api))[kept] == 2  # one blob, a reference from each job


async def _output_blob_keys(api: Api, job_id: str) -> list[str]:
    async with api.coord.db.read() as conn:
        files = (await conn.execute(select(JOBS.c.outputs).where(JOBS.c.id == job_id))).scalar_one()
    return [entry["blob_key"] for entry in files]


async def test_a_cached_copy_keeps_its_outputs_when_the_original_is_deleted(api: Api) -> None:
    worker = await api.register()
    first = await _submit_audio(api)
    await _run(api, worker, first["id"], {"text": "hello"}, {"transcript.txt": b"hello"})
    api.clock.advance(100)
    second = await _submit_audio(api)
    assert second["cached_from"] == first["id"]

    await _purge_completed(api, older_than_s=50)  # the original only
    assert (
        await api.http.get(f"{API_PREFIX}/jobs/{first['id']}", headers=api.auth("client"))
    ).status_code == 404
    await collect(api)
    assert (await output(api, second["id"], "transcript.txt")).content == b"hello"
    [kept] = await _output_blob_keys(api, second["id"])
    assert (await refs(api))[kept] == 1

    # The entry went with the job it pointed to; a copy does not serve the cache.
    third = await _submit_audio(api)
    assert third["state"] == "queued" and third["cached_from"] is None
    await _run(api, worker, third["id"], {"text": "hello again"}, {"transcript.txt": b"hello again"})
    assert (await _submit_audio(api))["cached_from"] == third["id"]


@pytest.mark.parametrize(
    "change",
    [
        {"params": {"language": "de"}},
        {"cache": False},
        {"type": "transcription"},
    ],
)
async def test_a_different_submit_is_not_served(api: Api, change: dict[str, Any]) -> None:
    worker = await api.register(task_types=["noop", "transcription"])
    base = {"params": {"language": "en", "beam": [1, 2]}, "cache": True}
    first = await api.submit(**base)
    await _run(api, worker, first["id"], "done", {})
    assert (await api.submit(**{**base, "params": {"beam": [1.0, 2], "language": "en"}}))[
        "state"
    ] == "completed"
    other = await api.submit(**{**base, **change})
    assert other["state"] == "queued" and other["cached_from"] is None


async def test_different_input_bytes_are_not_served(api: Api) -> None:
    worker = await api.register()
    first = await _submit_audio(api)
    await _run(api, worker, first["id"], "done", {})
    inputs = [{"name": "speech.wav", "upload_id": await upload_id(api, AUDIO + b"!", "speech.wav")}]
    other = await api.submit(inputs=inputs, cache=True, params={"language": "en"})
    assert other["state"] == "queued"


async def test_a_new_handler_version_is_not_served_an_old_result(api: Api) -> None:
    worker = await api.register()
    first = await api.submit(params={"x": 1}, cache=True)
    await _run(api, worker, first["id"], "v0", {})
    anything = {"type": "object", "additionalProperties": True}
    await api.register(param_schemas={"noop": {"version": "2.0", "params_schema": anything}})
    second = await api.submit(params={"x": 1}, cache=True)
    assert second["state"] == "queued"
    await _run(api, worker, second["id"], "v2", {})
    assert (await api.submit(params={"x": 1}, cache=True))["result"] == "v2"


async def test_a_job_reading_a_local_path_is_never_cached(api: Api) -> None:
    worker = await api.register(labels=["files-root:/srv/media"])
    spec = {"params": {"local_path": "/srv/media/a.wav"}, "labels": ["files-root:/srv/media"], "cache": True}
    first = await api.submit(**spec)
    await _run(api, worker, first["id"], "done", {})
    again = await api.submit(**spec)
    assert again["state"] == "queued" and again["cached_from"] is None


async def test_another_namespace_is_not_served(api: Api) -> None:
    worker = await api.register()
    first = await api.submit(params={"x": 1}, cache=True)
    await _run(api, worker, first["id"], "done", {})
    acme = await api.new_key("client", "acme")
    other = await api.submit(headers=acme, params={"x": 1}, cache=True)
    assert other["namespace"] == "acme" and other["state"] == "queued"
