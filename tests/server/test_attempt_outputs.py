"""Outputs belong to an attempt: only a successful attempt's outputs become the job's."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from taskpost.protocol import API_PREFIX
from tests.server.blobs_helpers import blob_files, collect, output, put_output, refs, upload_id
from tests.server.conftest import Api

pytestmark = pytest.mark.anyio


async def _running(api: Api) -> tuple[str, dict[str, Any]]:
    """A job with one input, claimed: (worker id, task)."""
    await api.submit(inputs=[{"name": "in.txt", "upload_id": await upload_id(api, b"input")}])
    worker = await api.register()
    [task] = await api.claim(worker)
    return worker, task


async def _end_attempt(api: Api, worker: str, task: dict[str, Any], how: str) -> None:
    if how == "expired":
        api.clock.advance(api.coord.settings.lease_s + 1)
        assert await api.reap() == 1
    elif how == "released":
        body = {"tasks": [{"job_id": task["job_id"], "lease_token": task["lease_token"]}], "reason": "stop"}
        response = await api.http.post(
            f"{API_PREFIX}/workers/{worker}/release", json=body, headers=api.auth("worker")
        )
        assert response.json()["acks"][0]["accepted"] is True
    else:
        ack = await api.complete(worker, task, outcome=how, error_message="no luck")
        assert ack["accepted"] is True


async def test_a_lost_attempt_leaves_nothing_and_the_job_serves_the_successful_one(api: Api) -> None:
    worker, first = await _running(api)
    job_id = first["job_id"]
    before = blob_files(api)
    assert (await put_output(api, first, "out.txt", b"attempt 1")).status_code == 201
    assert (await put_output(api, first, "partial.txt", b"half")).status_code == 201
    first_blobs = blob_files(api) - before
    assert len(first_blobs) == 2
    assert (await api.job(job_id))["outputs"] == []  # pending, not the job's yet

    await _end_attempt(api, worker, first, "expired")
    [second] = await api.claim(worker)
    assert second["attempt"] == 2
    assert (await put_output(api, second, "out.txt", b"attempt 2")).status_code == 201
    assert (await api.complete(worker, second))["state"] == "completed"

    job = await api.job(job_id)
    assert [f["name"] for f in job["outputs"]] == ["out.txt"]
    assert (await output(api, job_id, "out.txt")).content == b"attempt 2"
    assert (await output(api, job_id, "partial.txt")).status_code == 404
    assert (await collect(api)).blobs == 2
    assert blob_files(api).isdisjoint(first_blobs)
    # What is left on disk is exactly what something references: the input and attempt 2's output.
    assert blob_files(api) == set(await refs(api)) and len(blob_files(api)) == 2
    assert sorted((await refs(api)).values()) == [1, 2]  # the output; the input (its upload and the job)


@pytest.mark.parametrize("how", ["failed", "cancelled", "released", "expired"])
async def test_an_attempt_that_does_not_succeed_leaves_no_output(api: Api, how: str) -> None:
    worker, task = await _running(api)
    with_input = blob_files(api)
    assert (await put_output(api, task, "out.txt", b"partial work")).status_code == 201
    await _end_attempt(api, worker, task, how)
    assert (await api.job(task["job_id"]))["outputs"] == []
    assert (await collect(api)).blobs == 1
    assert blob_files(api) == with_input


async def test_an_output_uploaded_again_replaces_the_first_and_frees_it(api: Api) -> None:
    worker, task = await _running(api)
    with_input = blob_files(api)
    assert (await put_output(api, task, "out.txt", b"draft")).status_code == 201
    draft = blob_files(api) - with_input
    assert (await put_output(api, task, "out.txt", b"final")).status_code == 201
    await api.complete(worker, task)
    await api.complete(worker, task)  # a resend changes nothing
    job = await api.job(task["job_id"])
    assert [(f["name"], f["size"]) for f in job["outputs"]] == [("out.txt", 5)]
    assert (await output(api, task["job_id"], "out.txt")).content == b"final"
    await collect(api)
    assert draft and blob_files(api).isdisjoint(draft)
    assert len(blob_files(api) - with_input) == 1


async def test_an_output_whose_lease_is_lost_while_it_streams_is_refused_and_deleted(api: Api) -> None:
    _, task = await _running(api)
    with_input = blob_files(api)

    async def body() -> AsyncIterator[bytes]:
        yield b"first half, "
        api.clock.advance(api.coord.settings.lease_s + 1)
        assert await api.reap() == 1  # the lease is lost mid-upload
        yield b"second half"

    response = await api.http.put(
        f"{API_PREFIX}/tasks/{task['job_id']}/outputs/out.txt",
        content=body(),
        headers={**api.auth("worker"), "X-Lease-Token": task["lease_token"]},
    )
    assert response.status_code == 409 and response.json()["error"]["code"] == "stale_lease"
    assert blob_files(api) == with_input  # deleted at once, not left for the collector
    assert set(await refs(api)) == with_input


async def test_an_output_with_a_wrong_digest_is_refused_and_deleted(api: Api) -> None:
    _, task = await _running(api)
    with_input = blob_files(api)
    response = await put_output(api, task, "out.txt", b"text", sha256="0" * 64)
    assert response.status_code == 422
    assert response.json()["error"]["details"]["field"] == "X-Content-SHA256"
    assert blob_files(api) == with_input and set(await refs(api)) == with_input


@pytest.mark.parametrize("name", ["a\x01b", "tab\tname", "del\x7f", "..", "."])
async def test_output_and_upload_names_follow_the_protocol_rule(api: Api, name: str) -> None:
    _, task = await _running(api)
    quoted = name.encode().hex()
    assert quoted  # the name goes in the path percent-encoded
    path = "".join(f"%{quoted[i : i + 2]}" for i in range(0, len(quoted), 2))
    response = await api.http.put(
        f"{API_PREFIX}/tasks/{task['job_id']}/outputs/{path}",
        content=b"x",
        headers={**api.auth("worker"), "X-Lease-Token": task["lease_token"]},
    )
    assert response.status_code == 422, response.text
    uploaded = await api.http.post(
        f"{API_PREFIX}/uploads", params={"name": name}, content=b"x", headers=api.auth("client")
    )
    assert uploaded.status_code == 422, uploaded.text
    assert uploaded.json()["error"]["details"]["field"] == "name"
