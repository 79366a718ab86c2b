"""What the client does with answers a live coordinator rarely gives: a 503 with Retry-After, and a
download whose bytes differ from their announced SHA-256 (httpx.MockTransport stands in for it)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import httpx
import pytest

from taskpost.client import ChecksumMismatch, Client, ServerUnavailable
from taskpost.protocol import API_PREFIX, SHA256_HEADER

JOB = {
    "id": "j1",
    "type": "noop",
    "state": "completed",
    "priority": "default",
    "params": {},
    "meta": {},
    "created_at": "2024-01-01T00:00:00Z",
    "attempts": 1,
    "max_attempts": 3,
    "outputs": [{"name": "out.txt", "size": 5, "sha256": hashlib.sha256(b"hello").hexdigest()}],
}
STATS = {"counts": [], "totals": {"queued": 2}, "workers": []}
UNAVAILABLE = {"error": {"code": "database_unavailable", "message": "try later", "details": None}}


def test_a_503_is_retried_after_its_retry_after() -> None:
    seen: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        if len(seen) == 1:
            return httpx.Response(503, json=UNAVAILABLE, headers={"Retry-After": "0"})
        return httpx.Response(200, json=STATS)

    with Client("http://coordinator", transport=httpx.MockTransport(answer)) as client:
        assert client.stats().totals == {"queued": 2}
    assert seen == [f"{API_PREFIX}/stats"] * 2


def test_a_503_that_lasts_is_raised_with_its_code() -> None:
    def answer(_: httpx.Request) -> httpx.Response:
        return httpx.Response(503, json=UNAVAILABLE, headers={"Retry-After": "0"})

    with (
        Client("http://coordinator", retries=2, transport=httpx.MockTransport(answer)) as client,
        pytest.raises(ServerUnavailable) as raised,
    ):
        client.stats()
    assert raised.value.code == "database_unavailable" and raised.value.retry_after_s == 0


def test_a_download_with_the_wrong_digest_is_refused_and_not_kept(tmp_path: Path) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/outputs/out.txt"):
            # Cut in transit: the header and the job's record say "hello".
            return httpx.Response(200, content=b"hell", headers={SHA256_HEADER: JOB["outputs"][0]["sha256"]})  # type: ignore[index]
        return httpx.Response(200, json=JOB)

    with (
        Client("http://coordinator", transport=httpx.MockTransport(answer)) as client,
        pytest.raises(ChecksumMismatch),
    ):
        client.download_outputs("j1", tmp_path)
    assert list(tmp_path.iterdir()) == []
