"""Multipart submits stream their files into the blob store, and every failure leaves nothing."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from taskpost.protocol import API_PREFIX
from taskpost.server.settings import Settings
from tests.server.blobs_helpers import blob_files, collect, refs
from tests.server.conftest import Api, ManualClock, make_settings, running_api

pytestmark = pytest.mark.anyio

BOUNDARY = "taskpost-test-boundary"
JOB = json.dumps({"type": "noop"}).encode()


def _part(name: str, data: bytes, filename: str | None = None) -> bytes:
    disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
    return f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + data + b"\r\n"


def _closing() -> bytes:
    return f"--{BOUNDARY}--\r\n".encode()


async def _post(api: Api, body: bytes | AsyncIterator[bytes], boundary: str = BOUNDARY) -> dict[str, object]:
    response = await api.http.post(
        f"{API_PREFIX}/jobs",
        content=body,
        headers={**api.auth("client"), "Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    return {"status": response.status_code, **response.json()}


async def _nothing_left(api: Api) -> None:
    listed = await api.http.get(f"{API_PREFIX}/jobs", headers=api.auth("admin"))
    assert listed.json()["jobs"] == []
    assert blob_files(api) == set() and await refs(api) == {}


def _temporary_files_open(folder: Path) -> int:
    """Files under ``folder`` this process holds open (a spooled upload is an unnamed one)."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        count += target.startswith(str(folder))
    return count


@pytest.fixture
def roomy_settings(tmp_path: Path) -> Settings:
    # Over Starlette's 1 MiB in-memory spool, so that a spooling parser would go to disk.
    return make_settings(tmp_path / "data").model_copy(update={"max_upload_bytes": 8 * 1024 * 1024})


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc to see open files")
async def test_a_300_mib_chunked_body_is_413_at_the_limit_without_spooling(
    roomy_settings: Settings, clock: ManualClock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spool = tmp_path / "spool"
    spool.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(spool))
    chunk = b"x" * (256 * 1024)
    total = 300 * 1024 * 1024
    sent = 0
    spooled = 0

    async def body() -> AsyncIterator[bytes]:  # no Content-Length: chunked
        nonlocal sent, spooled
        yield _part("job", JOB) + f"--{BOUNDARY}\r\n".encode()
        yield b'Content-Disposition: form-data; name="f"; filename="big.bin"\r\n\r\n'
        while sent < total:
            spooled = max(spooled, _temporary_files_open(spool))
            sent += len(chunk)
            yield chunk

    async with running_api(roomy_settings, clock) as api:
        reply = await _post(api, body())
        assert reply["status"] == 413, reply
        assert spooled == 0
        assert sent <= roomy_settings.max_upload_bytes + 2 * len(chunk)
        await _nothing_left(api)


@pytest.mark.parametrize(
    "cut",
    [
        _part("job", JOB) + _part("f", b"file data", "a.txt")[:-20],  # inside the file's data
        _part("job", JOB) + _part("f", b"file data", "a.txt") + f"--{BOUNDARY}".encode(),
        _part("job", JOB) + f"--{BOUNDARY}\r\n".encode(),  # a part begun, never sent
        _part("f", b"file data", "a.txt") + _part("job", JOB),  # every part, no closing line
    ],
    ids=["mid-data", "boundary-without-dashes", "part-begun", "no-closing-line"],
)
async def test_a_body_without_its_closing_boundary_is_400_and_creates_nothing(api: Api, cut: bytes) -> None:
    reply = await _post(api, cut)
    assert reply["status"] == 400, reply
    assert reply["error"]["code"] == "bad_request"  # type: ignore[index]
    await _nothing_left(api)


async def test_the_number_of_parts_is_capped(settings: Settings, clock: ManualClock) -> None:
    capped = settings.model_copy(update={"max_multipart_parts": 3})
    async with running_api(capped, clock) as api:
        files = [_part("f", b"data", f"{i}.txt") for i in range(3)]
        reply = await _post(api, _part("job", JOB) + b"".join(files) + _closing())
        assert reply["status"] == 413, reply
        await _nothing_left(api)
        reply = await _post(api, _part("job", JOB) + b"".join(files[:2]) + _closing())
        assert reply["status"] == 201, reply


def _failing_bodies() -> Iterator[tuple[str, bytes, int]]:
    file = _part("f", b"stored first", "a.txt")
    missing_upload = json.dumps({"type": "noop", "inputs": [{"name": "b", "upload_id": "nope"}]}).encode()
    yield "unknown upload", file + _part("job", missing_upload), 404
    yield "invalid job", file + _part("job", b'{"type": "noop", "priorty": "high"}'), 422
    yield "unknown job type", file + _part("job", b'{"type": "no-such-type"}'), 422
    yield "unknown field", file + _part("note", b"hi") + _part("job", JOB), 422
    yield "two jobs", file + _part("job", JOB) + _part("job", JOB), 422
    yield "no job", file, 422
    yield "same file name twice", file + file + _part("job", JOB), 422
    yield "clashes with an input", file + _part("job", _job_naming("a.txt")), 422
    yield "bad file name", _part("f", b"x", "a\x01b") + _part("job", JOB), 422
    yield "job over the JSON limit", file + _part("job", b" " * (4 * 1024 * 1024 + 1)), 413


def _job_naming(name: str) -> bytes:
    return json.dumps({"type": "noop", "inputs": [{"name": name, "upload_id": "{upload}"}]}).encode()


@pytest.mark.parametrize(
    ("body", "status"),
    [(b, s) for _, b, s in _failing_bodies()],
    ids=[name for name, _, _ in _failing_bodies()],
)
async def test_a_refused_submit_leaves_no_job_and_no_blob(api: Api, body: bytes, status: int) -> None:
    if b"{upload}" in body:
        upload = await api.http.post(f"{API_PREFIX}/uploads?name=u", content=b"u", headers=api.auth("client"))
        body = body.replace(b"{upload}", upload.json()["upload_id"].encode())
        uploaded = blob_files(api)
    else:
        uploaded = set()
    reply = await _post(api, body + _closing())
    assert reply["status"] == status, reply
    listed = await api.http.get(f"{API_PREFIX}/jobs", headers=api.auth("admin"))
    assert listed.json()["jobs"] == []
    assert blob_files(api) == uploaded and set(await refs(api)) == uploaded


async def test_files_and_the_job_in_any_order_become_inputs(api: Api) -> None:
    body = _part("f", b"one", "1.txt") + _part("job", JOB) + _part("f", b"two", "2.txt") + _closing()
    reply = await _post(api, body)
    assert reply["status"] == 201, reply
    job = reply["job"]
    assert [(f["name"], f["size"]) for f in job["inputs"]] == [("1.txt", 3), ("2.txt", 3)]  # type: ignore[index]
    assert sorted((await refs(api)).values()) == [1, 1]
    assert len(blob_files(api)) == 2
    api.clock.advance(api.coord.settings.upload_grace_s + 1)
    assert (await collect(api)).blobs == 0  # the job holds its files, with no upload to expire
    assert len(blob_files(api)) == 2


async def test_a_repeated_idempotency_key_keeps_only_the_first_files(api: Api) -> None:
    job = json.dumps({"type": "noop", "idempotency_key": "once"}).encode()
    first = await _post(api, _part("job", job) + _part("f", b"first", "a.txt") + _closing())
    kept = blob_files(api)
    again = await _post(api, _part("job", job) + _part("f", b"second", "a.txt") + _closing())
    assert (first["status"], again["status"]) == (201, 200)
    assert again["job"]["id"] == first["job"]["id"]  # type: ignore[index]
    assert blob_files(api) == kept and set(await refs(api)) == kept


async def test_only_form_data_is_a_multipart_submit(api: Api) -> None:
    response = await api.http.post(
        f"{API_PREFIX}/jobs",
        content=_part("job", JOB) + _closing(),
        headers={**api.auth("client"), "Content-Type": f"multipart/mixed; boundary={BOUNDARY}"},
    )
    assert response.status_code == 400
    await _nothing_left(api)
