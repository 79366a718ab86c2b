"""In-process coordinator on a real database, driven through httpx's ASGI transport.

Tests that use the ``settings`` or ``api`` fixtures run twice: on a SQLite file and on a fresh
PostgreSQL database of the session's cluster (``database_url`` in tests/conftest.py). A test that
is about SQLite alone says so with ``@sqlite_only``.

The coordinator's clock is a ``ManualClock`` so lease expiry and backoff are tested by moving
time forward, not by sleeping.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from fastapi import FastAPI

from taskpost.protocol import API_PREFIX
from taskpost.server.app import create_app
from taskpost.server.coordinator import Coordinator
from taskpost.server.services import reaper
from taskpost.server.settings import Settings

ADMIN_KEY = "test-admin-key-at-least-32-characters-long"
T = TypeVar("T")


async def eventually(check: Callable[[], Awaitable[T | None]], what: str, timeout_s: float = 30.0) -> T:
    """Poll ``check`` until it returns something truthy; fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        await asyncio.sleep(0.02)


class ManualClock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Api:
    """A test client that speaks the protocol with a key of each role."""

    def __init__(
        self, client: httpx.AsyncClient, coord: Coordinator, clock: ManualClock, app: FastAPI
    ) -> None:
        self.http = client
        self.coord = coord
        self.clock = clock
        self.app = app
        self.keys: dict[str, str] = {"admin": ADMIN_KEY}

    def auth(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[role]}"}

    async def new_key(self, role: str, *namespaces: str) -> dict[str, str]:
        """Auth headers of a fresh key of ``role`` with ``namespaces``."""
        body = {"role": role, "namespaces": list(namespaces)}
        response = await self.http.post(f"{API_PREFIX}/keys", json=body, headers=self.auth("admin"))
        assert response.status_code == 201, response.text
        return {"Authorization": f"Bearer {response.json()['key']}"}

    async def make_key(self, role: str) -> str:
        response = await self.http.post(f"{API_PREFIX}/keys", json={"role": role}, headers=self.auth("admin"))
        assert response.status_code == 201, response.text
        key: str = response.json()["key"]
        self.keys.setdefault(role, key)
        return key

    async def submit(
        self, expect: int = 201, headers: dict[str, str] | None = None, **spec: Any
    ) -> dict[str, Any]:
        spec.setdefault("type", "noop")
        response = await self.http.post(
            f"{API_PREFIX}/jobs", json=spec, headers=headers or self.auth("client")
        )
        assert response.status_code == expect, response.text
        body: dict[str, Any] = response.json()
        return body["job"] if expect in (200, 201) else body

    async def job(self, job_id: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
        response = await self.http.get(f"{API_PREFIX}/jobs/{job_id}", headers=headers or self.auth("client"))
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def events(self, job_id: str) -> list[dict[str, Any]]:
        response = await self.http.get(f"{API_PREFIX}/jobs/{job_id}/events", headers=self.auth("client"))
        assert response.status_code == 200, response.text
        body: list[dict[str, Any]] = response.json()
        return body

    async def register(self, headers: dict[str, str] | None = None, **body: Any) -> str:
        body.setdefault("task_types", ["noop"])
        response = await self.http.post(
            f"{API_PREFIX}/workers/register", json=body, headers=headers or self.auth("worker")
        )
        assert response.status_code == 201, response.text
        worker_id: str = response.json()["worker_id"]
        return worker_id

    async def claim(
        self,
        worker_id: str,
        max_tasks: int = 1,
        wait_s: float = 0,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> list[dict[str, Any]]:
        response = await self.http.post(
            f"{API_PREFIX}/workers/{worker_id}/claim",
            json={"max_tasks": max_tasks, "wait_s": wait_s, **extra},
            headers=headers or self.auth("worker"),
        )
        if response.status_code == 204:
            return []
        assert response.status_code == 200, response.text
        tasks: list[dict[str, Any]] = response.json()["tasks"]
        return tasks

    async def complete(
        self,
        worker_id: str,
        task: dict[str, Any],
        outcome: str = "succeeded",
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> dict[str, Any]:
        completion = {
            "job_id": task["job_id"],
            "lease_token": task["lease_token"],
            "outcome": outcome,
            **extra,
        }
        response = await self.http.post(
            f"{API_PREFIX}/workers/{worker_id}/complete",
            json={"completions": [completion]},
            headers=headers or self.auth("worker"),
        )
        assert response.status_code == 200, response.text
        ack: dict[str, Any] = response.json()["acks"][0]
        return ack

    async def heartbeat(
        self,
        worker_id: str,
        *tasks: dict[str, Any],
        progress: float | None = None,
        message: str | None = None,
    ) -> dict[str, Any]:
        body = {
            "tasks": [
                {
                    "job_id": t["job_id"],
                    "lease_token": t["lease_token"],
                    "progress": progress,
                    "message": message,
                }
                for t in tasks
            ]
        }
        response = await self.http.post(
            f"{API_PREFIX}/workers/{worker_id}/heartbeat", json=body, headers=self.auth("worker")
        )
        assert response.status_code == 200, response.text
        reply: dict[str, Any] = response.json()
        return reply

    async def reap(self) -> int:
        return await reaper.reap_once(self.coord)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


def make_settings(data_dir: Path, database_url: str | None = None) -> Settings:
    """Test settings; the database is a SQLite file in ``data_dir`` unless ``database_url`` names one."""
    return Settings(
        data_dir=data_dir,
        database_url=database_url,
        admin_key=ADMIN_KEY,
        lease_s=30,
        long_poll_s=5,
        reaper_interval_s=3600,  # tests call reap_once themselves
        max_upload_bytes=1024 * 1024,
        _env_file=None,
    )


@asynccontextmanager
async def running_api(
    settings: Settings, clock: ManualClock, client_address: str = "127.0.0.1"
) -> AsyncIterator[Api]:
    """A started coordinator app and an Api on it, with a client and a worker key made."""
    coord = Coordinator.from_settings(settings)
    coord.clock = clock
    app = create_app(settings, coord)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=(client_address, 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://coordinator") as client:
            api = Api(client, coord, clock, app)
            await api.make_key("client")
            await api.make_key("worker")
            yield api


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    """Settings on each database kind in turn (``database_url``: SQLite, then PostgreSQL)."""
    return make_settings(tmp_path / "data", database_url)


@pytest.fixture
async def api(settings: Settings, clock: ManualClock) -> AsyncIterator[Api]:
    async with running_api(settings, clock) as api:
        yield api


class HoldSeen(logging.Handler):
    """Sets ``seen`` when the claim service logs that it holds a claim (found nothing, waits)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.seen = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith("holding a claim"):
            self.seen.set()


@pytest.fixture
def hold_seen() -> Iterator[HoldSeen]:
    logger = logging.getLogger("taskpost.server.services.claims")
    handler, level = HoldSeen(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(level)
