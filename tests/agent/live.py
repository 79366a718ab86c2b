"""The real coordinator, for the agent's tests: the server's own app on a SQLite file.

``LiveCoordinator`` runs in this process behind httpx's ASGI transport (the server tests' ``Api``
with its admin, client and worker keys), so every answer the agent gets, error codes included,
is the one the coordinator really sends. ``served_coordinator`` puts the same app behind a real
uvicorn on a socket of 127.0.0.1, for the tests that stop and restart it.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import httpx
import uvicorn

from taskpost.agent.client import CoordinatorClient
from taskpost.protocol import API_PREFIX, ClaimedTask, WorkerRegister
from taskpost.server.app import create_app
from taskpost.server.settings import Settings
from tests.server.conftest import ADMIN_KEY, Api, ManualClock, eventually, make_settings, running_api

SERVER_URL = "http://coordinator"
"""Base URL of the in-process coordinator (the ASGI transport ignores the host)."""

T = TypeVar("T")


def coordinator_settings(data_dir: Path, **overrides: Any) -> Settings:
    """The server tests' settings with the short long poll and heartbeat an agent test wants."""
    values: dict[str, Any] = {
        "long_poll_s": 1.0,
        "heartbeat_interval_s": 0.05,
        "max_upload_bytes": 8 * 1024 * 1024,
        **overrides,
    }
    return make_settings(data_dir).model_copy(update=values)


class LiveCoordinator:
    """A started coordinator app; clients submit jobs to it, agents connect to it."""

    def __init__(self, api: Api) -> None:
        self.api = api
        self.transport = httpx.ASGITransport(app=api.app, client=("127.0.0.1", 50001))

    @property
    def clock(self) -> ManualClock:
        return self.api.clock

    @property
    def worker_key(self) -> str:
        return self.api.keys["worker"]

    def client(self, api_key: str | None = None) -> CoordinatorClient:
        """The agent's client, connected to this coordinator (with the worker key by default)."""
        return CoordinatorClient(SERVER_URL, api_key or self.worker_key, transport=self.transport)

    async def submit(self, **spec: Any) -> dict[str, Any]:
        return await self.api.submit(**spec)

    async def claim(self, client: CoordinatorClient, **spec: Any) -> tuple[str, ClaimedTask]:
        """Submit a job of ``spec``, register an agent and claim the job with it."""
        job = await self.submit(**spec)
        registered = await client.register(WorkerRegister(task_types=[spec.get("type", "noop")]))
        claimed = await client.claim(registered.worker_id, max_tasks=1, wait_s=0)
        [task] = claimed.tasks
        assert task.job_id == job["id"]
        return registered.worker_id, task

    async def expire_leases(self) -> int:
        """Move the coordinator's clock past every lease and let the reaper requeue the tasks."""
        self.clock.advance(self.api.coord.settings.lease_s + 1)
        return await self.api.reap()

    async def upload(self, name: str, data: bytes) -> dict[str, str]:
        """Upload an input file; the reference a job spec names it by."""
        response = await self.api.http.post(
            f"{API_PREFIX}/uploads", params={"name": name}, content=data, headers=self.api.auth("client")
        )
        assert response.status_code == 201, response.text
        return {"name": name, "upload_id": response.json()["upload_id"]}

    async def job(self, job_id: str) -> dict[str, Any]:
        return await self.api.job(job_id)

    async def events(self, job_id: str) -> list[dict[str, Any]]:
        return await self.api.events(job_id)

    async def output(self, job_id: str, name: str) -> bytes:
        response = await self.api.http.get(
            f"{API_PREFIX}/jobs/{job_id}/outputs/{name}", headers=self.api.auth("client")
        )
        assert response.status_code == 200, response.text
        return response.content

    async def cancel(self, job_id: str) -> None:
        response = await self.api.http.post(
            f"{API_PREFIX}/jobs/{job_id}/cancel", headers=self.api.auth("client")
        )
        assert response.status_code == 200, response.text

    async def workers(self, include_gone: bool = False) -> list[dict[str, Any]]:
        response = await self.api.http.get(
            f"{API_PREFIX}/workers", params={"include_gone": include_gone}, headers=self.api.auth("admin")
        )
        assert response.status_code == 200, response.text
        found: list[dict[str, Any]] = response.json()
        return found

    async def wait_state(self, job_id: str, *states: str, timeout_s: float = 20.0) -> dict[str, Any]:
        """The job once it is in one of ``states``."""

        async def check() -> dict[str, Any] | None:
            job = await self.job(job_id)
            return job if job["state"] in states else None

        return await eventually(check, f"job {job_id} to be {' or '.join(states)}", timeout_s)


@asynccontextmanager
async def live_coordinator(settings: Settings) -> AsyncIterator[LiveCoordinator]:
    async with running_api(settings, ManualClock()) as api:
        yield LiveCoordinator(api)


def listening_socket(port: int = 0) -> socket.socket:
    """A socket of 127.0.0.1 (``port`` 0: a free one), ready for uvicorn to serve on."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    return sock


@asynccontextmanager
async def served_coordinator(settings: Settings, sock: socket.socket) -> AsyncIterator[str]:
    """The coordinator behind a real uvicorn on ``sock``; yields its URL, and stops it on exit."""
    config = uvicorn.Config(create_app(settings), log_config=None, lifespan="on", ws="none")
    server = uvicorn.Server(config)
    serving = asyncio.ensure_future(server.serve(sockets=[sock]))
    try:
        await eventually(_started(server, serving), "uvicorn to start")
        host, port = sock.getsockname()[:2]
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        await serving


def _started(server: uvicorn.Server, serving: asyncio.Future[None]) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        if serving.done():
            serving.result()  # raises what stopped it
            raise AssertionError("uvicorn exited before it started")
        return bool(server.started)

    return check


async def new_key(url: str, role: str) -> str:
    """A fresh key of ``role`` from the coordinator at ``url`` (through its admin API)."""
    async with httpx.AsyncClient(base_url=url + API_PREFIX) as http:
        response = await http.post(
            "/keys", json={"role": role}, headers={"Authorization": f"Bearer {ADMIN_KEY}"}
        )
    assert response.status_code == 201, response.text
    key: str = response.json()["key"]
    return key
