"""The coordinator with its blobs in S3 (moto's server on 127.0.0.1): uploads, inputs and outputs
go through the real app and land in the bucket; the blob collector deletes from it."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from taskpost.protocol import API_PREFIX
from taskpost.server.settings import Settings
from tests.server.blobs.streams import MiB, expected_digest, stream
from tests.server.blobs_helpers import collect, output, put_output, refs, upload, upload_id
from tests.server.conftest import Api, ManualClock, make_settings, running_api
from tests.support.s3 import S3Bucket

pytest.importorskip("aiobotocore", reason="the S3 store needs the extra s3")
pytestmark = pytest.mark.anyio

PREFIX = "coordinator/blobs/"
LIMIT = 32 * MiB


@pytest.fixture
async def s3_api(tmp_path: Path, clock: ManualClock, s3_bucket: S3Bucket) -> AsyncIterator[Api]:
    base = make_settings(tmp_path / "data")
    explicit = {name: getattr(base, name) for name in base.model_fields_set}
    s3 = s3_bucket.server.settings_env(s3_bucket.name, PREFIX)
    settings = Settings(_env_file=None, **{**explicit, "max_upload_bytes": LIMIT, **s3})
    async with running_api(settings, clock) as api:
        yield api


async def bucket_matches_the_database(api: Api, bucket: S3Bucket) -> list[str]:
    """The bucket's keys, after checking they are exactly the blob rows and nothing is half-sent."""
    keys = bucket.object_keys()
    assert keys == sorted(PREFIX + key for key in await refs(api))
    assert bucket.multipart_uploads() == []
    return keys


async def claimed_with_input(api: Api, data: bytes) -> tuple[str, dict[str, Any]]:
    await api.submit(inputs=[{"name": "in.bin", "upload_id": await upload_id(api, data, "in.bin")}])
    worker = await api.register()
    [task] = await api.claim(worker)
    return worker, task


async def test_an_input_and_a_large_output_round_trip_through_s3(s3_api: Api, s3_bucket: S3Bucket) -> None:
    data = b"input bytes " * 1000
    worker, task = await claimed_with_input(s3_api, data)
    assert len(await bucket_matches_the_database(s3_api, s3_bucket)) == 1
    assert s3_api.coord.blobs.local_path("x") is None  # served as a stream, not from a file

    response = await s3_api.http.get(
        f"{API_PREFIX}/tasks/{task['job_id']}/inputs/in.bin",
        headers={**s3_api.auth("worker"), "X-Lease-Token": task["lease_token"]},
    )
    assert response.status_code == 200
    assert response.content == data
    assert response.headers["X-Content-SHA256"] == hashlib.sha256(data).hexdigest()

    size = 20 * MiB  # more than one 8 MiB part: a multipart upload while the request streams in
    sent = await s3_api.http.put(
        f"{API_PREFIX}/tasks/{task['job_id']}/outputs/out.bin",
        content=stream(size),
        headers={
            **s3_api.auth("worker"),
            "X-Lease-Token": task["lease_token"],
            "X-Content-SHA256": expected_digest(size),
        },
    )
    assert sent.status_code == 201, sent.text
    assert (await s3_api.complete(worker, task))["state"] == "completed"

    got = await output(s3_api, task["job_id"], "out.bin")
    assert got.status_code == 200
    assert len(got.content) == size
    assert hashlib.sha256(got.content).hexdigest() == expected_digest(size)
    assert got.headers["X-Content-SHA256"] == expected_digest(size)
    assert len(await bucket_matches_the_database(s3_api, s3_bucket)) == 2


async def test_refused_files_leave_nothing_in_the_bucket(s3_api: Api, s3_bucket: S3Bucket) -> None:
    _, task = await claimed_with_input(s3_api, b"input")
    before = await bucket_matches_the_database(s3_api, s3_bucket)

    too_large = await s3_api.http.post(
        f"{API_PREFIX}/uploads",
        params={"name": "big.bin"},
        content=stream(LIMIT + 1),
        headers=s3_api.auth("client"),
    )
    assert too_large.status_code == 413
    wrong_digest = await put_output(s3_api, task, "out.bin", b"output", sha256="0" * 64)
    assert wrong_digest.status_code == 422, wrong_digest.text
    assert wrong_digest.json()["error"]["details"]["field"] == "X-Content-SHA256"
    await collect(s3_api)
    assert await bucket_matches_the_database(s3_api, s3_bucket) == before


async def test_the_collector_deletes_replaced_outputs_from_the_bucket(
    s3_api: Api, s3_bucket: S3Bucket
) -> None:
    worker, task = await claimed_with_input(s3_api, b"input")
    assert (await put_output(s3_api, task, "out.txt", b"first")).status_code == 201
    first = set(await bucket_matches_the_database(s3_api, s3_bucket))
    assert (await put_output(s3_api, task, "out.txt", b"second")).status_code == 201
    assert (await collect(s3_api)).blobs == 1
    kept = set(await bucket_matches_the_database(s3_api, s3_bucket))
    assert len(kept) == 2 and len(first - kept) == 1  # the first output's object is gone
    assert (await s3_api.complete(worker, task))["state"] == "completed"
    assert (await output(s3_api, task["job_id"], "out.txt")).content == b"second"


async def test_an_upload_streams_into_the_bucket(s3_api: Api, s3_bucket: S3Bucket) -> None:
    response = await upload(s3_api, b"x" * 1000, "small.txt")
    assert response.status_code == 201, response.text
    [key] = await bucket_matches_the_database(s3_api, s3_bucket)
    assert s3_bucket.server.client().get_object(Bucket=s3_bucket.name, Key=key)["Body"].read() == b"x" * 1000


async def test_an_input_whose_blob_is_gone_is_a_404_not_a_cut_off_200(
    s3_api: Api, s3_bucket: S3Bucket
) -> None:
    _, task = await claimed_with_input(s3_api, b"soon gone")
    [key] = await bucket_matches_the_database(s3_api, s3_bucket)
    await s3_api.coord.blobs.delete(key.removeprefix(PREFIX))

    response = await s3_api.http.get(
        f"{API_PREFIX}/tasks/{task['job_id']}/inputs/in.bin",
        headers={**s3_api.auth("worker"), "X-Lease-Token": task["lease_token"]},
    )
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "file_not_found"
