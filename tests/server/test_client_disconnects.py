"""A client that goes away in the middle of its body: no error logged, no 500, nothing kept.

httpx always sends a whole body, so these tests call the ASGI app directly, with a ``receive``
that delivers part of the body and then says the client disconnected.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
from starlette.types import Message

from taskpost.protocol import API_PREFIX
from tests.server.blobs_helpers import blob_files, refs
from tests.server.conftest import Api

pytestmark = pytest.mark.anyio

BOUNDARY = b"cut-short"
MULTIPART_START = (
    b"--" + BOUNDARY + b'\r\nContent-Disposition: form-data; name="job"\r\n\r\n{"type": "noop"}\r\n'
    b"--" + BOUNDARY + b'\r\nContent-Disposition: form-data; name="file"; filename="a.bin"\r\n\r\n'
)


async def _disconnect_midway(
    api: Api, method: str, path: str, first_part: bytes, headers: dict[str, str]
) -> list[Message]:
    """Send ``first_part`` of a body announced as much longer, then disconnect; what the app sent."""
    delivered = False

    async def receive() -> Message:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": first_part, "more_body": True}
        return {"type": "http.disconnect"}

    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    raw_path, _, query = path.partition("?")
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": raw_path,
        "raw_path": raw_path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": [
            (b"host", b"coordinator"),
            (b"content-length", str(len(first_part) * 100).encode()),
            *((name.lower().encode(), value.encode()) for name, value in headers.items()),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("coordinator", 80),
    }
    await api.app(scope, receive, send)
    return sent


def _statuses(sent: list[Message]) -> list[int]:
    return [message["status"] for message in sent if message["type"] == "http.response.start"]


async def _running_task(api: Api) -> tuple[str, dict[str, Any]]:
    await api.submit()
    worker_id = await api.register()
    [task] = await api.claim(worker_id)
    return worker_id, task


async def test_an_upload_cut_off_midway_is_dropped_quietly(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    sent = await _disconnect_midway(
        api, "POST", f"{API_PREFIX}/uploads?name=a.bin", b"x" * 1000, api.auth("client")
    )
    assert all(status < 500 for status in _statuses(sent)), sent
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text
    assert blob_files(api) == set() and await refs(api) == {}


async def test_an_output_cut_off_midway_is_dropped_quietly(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    _, task = await _running_task(api)
    caplog.set_level(logging.DEBUG)
    sent = await _disconnect_midway(
        api,
        "PUT",
        f"{API_PREFIX}/tasks/{task['job_id']}/outputs/out.txt",
        b"y" * 1000,
        {**api.auth("worker"), "X-Lease-Token": task["lease_token"]},
    )
    assert all(status < 500 for status in _statuses(sent)), sent
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text
    assert blob_files(api) == set() and await refs(api) == {}


async def test_a_multipart_submit_cut_off_midway_creates_nothing(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    headers = {**api.auth("client"), "Content-Type": f"multipart/form-data; boundary={BOUNDARY.decode()}"}
    sent = await _disconnect_midway(api, "POST", f"{API_PREFIX}/jobs", MULTIPART_START + b"z" * 1000, headers)
    assert all(status < 500 for status in _statuses(sent)), sent
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text
    listed = await api.http.get(f"{API_PREFIX}/jobs", headers=api.auth("client"))
    assert listed.json()["jobs"] == []
    assert blob_files(api) == set() and await refs(api) == {}
