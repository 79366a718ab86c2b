"""The single-service ``GET /health``: the coordinator's answer with the agent's report added."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

from taskpost.single_service import AgentHealth

pytestmark = pytest.mark.anyio


async def coordinator_health(request: Request) -> JSONResponse:
    return JSONResponse({"status": "OK", "database": "ok"})


async def other(request: Request) -> PlainTextResponse:
    return PlainTextResponse("untouched")


def wrapped() -> AgentHealth:
    routes = [Route("/health", coordinator_health, methods=["GET", "HEAD"]), Route("/other", other)]
    return AgentHealth(Starlette(routes=routes))


async def get(app: AgentHealth, path: str, method: str = "GET") -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://x") as http:
        return await http.request(method, path)


async def test_health_reports_both_parts() -> None:
    app = wrapped()
    starting = await get(app, "/health")
    assert starting.status_code == 503
    assert starting.json() == {"status": "OK", "database": "ok", "agent": {"status": "starting"}}

    report: dict[str, Any] = {"status": "ok", "running_tasks": []}
    app.report = lambda: (200, report)
    ready = await get(app, "/health")
    assert ready.status_code == 200 and ready.json()["agent"] == report
    assert int(ready.headers["content-length"]) == len(ready.content)

    app.report = lambda: (503, {"status": "stopping"})
    assert (await get(app, "/health")).status_code == 503
    assert (await get(app, "/health", "HEAD")).status_code == 503


async def test_other_paths_pass_through() -> None:
    answer = await get(wrapped(), "/other")
    assert (answer.status_code, answer.text) == (200, "untouched")
