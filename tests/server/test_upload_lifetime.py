"""Uploads: declared checksums, the grace period, blobs shared by jobs, and crash leftovers."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import delete, insert, select

from taskpost.protocol import API_PREFIX
from taskpost.server.services import blob_refs
from taskpost.server.services.blob_refs import BLOBS
from taskpost.server.services.jobs import UPLOADS
from tests.server.blobs_helpers import blob_files, collect, refs, upload, upload_id
from tests.server.conftest import Api

pytestmark = pytest.mark.anyio


async def _upload_rows(api: Api) -> int:
    async with api.coord.db.read() as conn:
        return len((await conn.execute(select(UPLOADS.c.id))).all())


async def test_an_upload_with_a_wrong_declared_digest_is_refused_and_not_kept(api: Api) -> None:
    wrong = await upload(api, b"payload", **{"X-Content-SHA256": hashlib.sha256(b"other").hexdigest()})
    assert wrong.status_code == 422
    error = wrong.json()["error"]
    assert error["code"] == "invalid_params" and error["details"]["field"] == "X-Content-SHA256"
    assert blob_files(api) == set() and await refs(api) == {} and await _upload_rows(api) == 0
    right = await upload(
        api, b"payload", **{"X-Content-SHA256": hashlib.sha256(b"payload").hexdigest().upper()}
    )
    assert right.status_code == 201, right.text
    assert len(blob_files(api)) == 1


async def test_an_unused_upload_is_deleted_after_the_grace_period(api: Api) -> None:
    upload = await upload_id(api, b"never used")
    grace = api.coord.settings.upload_grace_s
    api.clock.advance(grace - 1)
    assert (await collect(api)).uploads == 0
    assert len(blob_files(api)) == 1
    api.clock.advance(2)
    done = await collect(api)
    assert (done.uploads, done.blobs) == (1, 1)
    assert blob_files(api) == set() and await refs(api) == {}
    body = await api.submit(expect=404, inputs=[{"name": "a", "upload_id": upload}])
    assert body["error"]["code"] == "upload_not_found"


async def test_jobs_keep_a_shared_upload_blob_after_the_upload_expires(api: Api) -> None:
    shared = await upload_id(api, b"shared input")
    grace = api.coord.settings.upload_grace_s
    first = await api.submit(inputs=[{"name": "a", "upload_id": shared}])
    api.clock.advance(grace - 1)
    # Naming it in a new job keeps the upload for another grace period.
    second = await api.submit(inputs=[{"name": "a", "upload_id": shared}, {"name": "b", "upload_id": shared}])
    api.clock.advance(grace - 1)
    assert (await collect(api)).uploads == 0
    api.clock.advance(2)
    assert (await collect(api)).uploads == 1
    [key] = blob_files(api)
    assert await refs(api) == {key: 3}  # the first job once, the second twice
    worker = await api.register()
    for job in (first, second):
        [task] = await api.claim(worker)
        got = await api.http.get(
            f"{API_PREFIX}/tasks/{task['job_id']}/inputs/a",
            headers={**api.auth("worker"), "X-Lease-Token": task["lease_token"]},
        )
        assert got.content == b"shared input", job["id"]


async def test_a_write_cut_short_by_a_crash_is_collected_after_the_grace_period(api: Api) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b"written before the crash"

    # What a coordinator killed between writing a blob and recording its use leaves behind.
    key = blob_refs.new_key()
    async with api.coord.db.write() as conn:
        await conn.execute(insert(BLOBS).values(key=key, refs=0, created_at=api.clock()))
    await api.coord.blobs.put(key, chunks(), max_bytes=1024)
    api.clock.advance(api.coord.settings.upload_grace_s / 2)
    assert (await collect(api)).blobs == 0  # it may still be arriving
    assert blob_files(api) == {key}
    api.clock.advance(api.coord.settings.upload_grace_s)
    done = await collect(api)
    assert (done.abandoned_writes, done.blobs) == (1, 1)
    assert blob_files(api) == set() and await refs(api) == {}


async def test_garbage_whose_file_is_already_gone_is_forgotten(api: Api) -> None:
    await upload_id(api, b"data")
    [key] = blob_files(api)
    async with api.coord.db.write() as conn:  # the upload goes: its blob is garbage
        await conn.execute(delete(UPLOADS))
        await blob_refs.drop(conn, [key])
    # A collector that crashed after deleting the file but before deleting the row.
    await api.coord.blobs.delete(key)
    assert (await collect(api)).blobs == 1
    assert await refs(api) == {}
