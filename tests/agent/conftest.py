"""Fixtures of the agent tests: settings, the real coordinator (in process) and claimed-task data."""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from taskpost.agent.client import CoordinatorClient
from taskpost.agent.settings import AgentSettings
from taskpost.protocol import ClaimedTask, InputFile, Priority
from tests.agent.live import SERVER_URL, LiveCoordinator, coordinator_settings, live_coordinator


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No TASKPOST_* variable or .env file of the developer leaks into a test."""
    for name in list(os.environ):
        if name.startswith("TASKPOST_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., AgentSettings]:
    def make(**overrides: Any) -> AgentSettings:
        values: dict[str, Any] = {
            "server_url": SERVER_URL,
            "api_key": "set-by-the-test",
            "health_port": 0,
            "work_dir": tmp_path / "work",
            "poll_interval": 0.01,
            "shutdown_grace_s": 5,
        }
        values.update(overrides)
        return AgentSettings(_env_file=None, **values)

    return make


@pytest.fixture
async def live(tmp_path: Path) -> AsyncIterator[LiveCoordinator]:
    """The real coordinator app on a SQLite file in ``tmp_path``, started."""
    async with live_coordinator(coordinator_settings(tmp_path / "coordinator")) as coordinator:
        yield coordinator


@pytest.fixture
async def client(live: LiveCoordinator) -> AsyncIterator[CoordinatorClient]:
    """The agent's client on the live coordinator, with a worker key."""
    async with live.client() as http:
        yield http


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def make_claim() -> Callable[..., ClaimedTask]:
    """A claimed task as data, for tests whose task never reaches the coordinator."""
    counter = iter(range(1, 10_000))

    def make(
        params: dict[str, Any] | None = None,
        *,
        job_id: str | None = None,
        type: str = "noop",
        timeout_s: float | None = None,
        inputs: dict[str, bytes] | None = None,
    ) -> ClaimedTask:
        n = next(counter)
        return ClaimedTask(
            job_id=job_id or f"job-{n}",
            type=type,
            params=params or {},
            priority=Priority.DEFAULT,
            attempt=1,
            max_attempts=3,
            timeout_s=timeout_s,
            lease_token=f"lease-{n}",
            lease_expires_at=datetime.now(UTC) + timedelta(seconds=30),
            inputs=[
                InputFile(name=name, size=len(data), sha256=sha256(data))
                for name, data in (inputs or {}).items()
            ],
        )

    return make
