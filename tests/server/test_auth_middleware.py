"""Authentication before any body is read, on every route; failed attempts limited per address."""

from __future__ import annotations

import logging
import re
from typing import Any

import httpx
import pytest

from taskpost.protocol import API_PREFIX
from taskpost.server.settings import Settings
from tests.server.conftest import Api

pytestmark = pytest.mark.anyio

BURST = 5


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # Tokens come back so slowly that none returns during a test.
    return settings.model_copy(update={"auth_failure_burst": BURST, "auth_failure_rate_per_s": 0.001})


def _api_routes(api: Api) -> list[tuple[str, str]]:
    """Every (method, path) under /api/v1 the OpenAPI document lists, path parameters filled in."""
    routes: list[tuple[str, str]] = []
    for path, operations in api.app.openapi()["paths"].items():
        if path.startswith(API_PREFIX):
            filled = re.sub(r"\{[^}]+\}", "x", path)
            routes += [(method.upper(), filled) for method in operations]
    return routes


async def _call_without_reading(
    api: Api, method: str, path: str, headers: list[tuple[bytes, bytes]], address: str
) -> Any:
    """Call the app as a server would, noting whether it ever asked for the request body."""
    asked_for_body: list[bool] = []
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        asked_for_body.append(True)
        return {"type": "http.request", "body": b'{"jobs": [' + b"0," * 1000 + b"0]}", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"content-type", b"application/json"), (b"content-length", b"100000000"), *headers],
        "client": (address, 1234),
        "server": ("coordinator", 80),
        "state": {},
    }
    await api.app(scope, receive, send)
    return sent[0]["status"], asked_for_body


async def test_every_api_route_answers_401_before_reading_the_body(api: Api) -> None:
    routes = _api_routes(api)
    assert ("POST", f"{API_PREFIX}/jobs/batch") in routes and len(routes) > 15
    calls = [(m, p, h) for m, p in routes for h in ([], [(b"authorization", b"Bearer wrong-key")])]
    for n, (method, path, headers) in enumerate(calls):
        # One address per call, so that the failure limit stays out of this test.
        status, asked_for_body = await _call_without_reading(api, method, path, headers, f"10.9.0.{n}")
        assert status == 401, (method, path, status)
        assert asked_for_body == [], f"{method} {path} read the body before authenticating"


async def test_failed_authentications_get_429_per_address_and_are_logged_without_the_key(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="taskpost.server.api.auth")
    wrong_keys = [f"wrong-key-{i}-0123456789abcdef0123456789" for i in range(BURST + 3)]
    statuses: list[int] = []
    for key in wrong_keys:
        response = await api.http.get(f"{API_PREFIX}/jobs", headers={"Authorization": f"Bearer {key}"})
        statuses.append(response.status_code)
        if response.status_code == 429:
            assert int(response.headers["Retry-After"]) >= 1
            assert response.json()["error"]["code"] == "too_many_auth_failures"
    assert statuses == [401] * BURST + [429] * 3
    # While it is over the limit, the address gets 429 even with a good key: no oracle for guessers.
    blocked = await api.http.get(f"{API_PREFIX}/jobs", headers=api.auth("client"))
    assert blocked.status_code == 429

    failures = [r for r in caplog.records if r.getMessage().startswith("authentication failed from")]
    assert len(failures) == BURST
    assert all(r.levelno == logging.WARNING and "127.0.0.1" in r.getMessage() for r in failures)
    for key in wrong_keys:
        assert key not in caplog.text and key[:12] not in caplog.text

    other_address = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=api.app, client=("127.0.0.2", 50000)), base_url="http://coordinator"
    )
    async with other_address:
        response = await other_address.get(f"{API_PREFIX}/jobs", headers=api.auth("client"))
        assert response.status_code == 200


async def test_a_revoked_generated_key_is_logged_by_its_public_prefix_only(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    created = (
        await api.http.post(f"{API_PREFIX}/keys", json={"role": "client"}, headers=api.auth("admin"))
    ).json()
    await api.http.delete(f"{API_PREFIX}/keys/{created['info']['id']}", headers=api.auth("admin"))
    caplog.set_level(logging.WARNING, logger="taskpost.server.api.auth")
    response = await api.http.get(f"{API_PREFIX}/jobs", headers={"Authorization": f"Bearer {created['key']}"})
    assert response.status_code == 401 and response.headers["WWW-Authenticate"] == "Bearer"
    assert created["info"]["prefix"] in caplog.text
    assert created["key"] not in caplog.text


async def test_health_and_docs_need_no_key(api: Api) -> None:
    assert (await api.http.get("/health")).status_code == 200
    assert (await api.http.get("/openapi.json")).status_code == 200
