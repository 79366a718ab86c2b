"""Fixtures of the agent tests: settings, a mocked coordinator (respx) and claimed-task factories."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import respx

from agent.client import CoordinatorClient
from agent.settings import AgentSettings
from protocol import API_PREFIX, ClaimedTask, InputFile, Priority

SERVER = "http://coord.test"
API = SERVER + API_PREFIX
KEY = "tp_worker_secret_key"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No TASKPOST_* variable or .env file of the developer leaks into a test."""
    import os

    for name in list(os.environ):
        if name.startswith("TASKPOST_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., AgentSettings]:
    def make(**overrides: Any) -> AgentSettings:
        values: dict[str, Any] = {
            "server_url": SERVER,
            "api_key": KEY,
            "health_port": 0,
            "work_dir": tmp_path / "work",
            "poll_interval": 0.01,
            "shutdown_grace_s": 5,
        }
        values.update(overrides)
        return AgentSettings(_env_file=None, **values)

    return make


@pytest.fixture
def coordinator() -> Iterator[respx.MockRouter]:
    """A respx router standing in for the coordinator's agent API under ``/api/v1``."""
    with respx.mock(base_url=API, assert_all_called=False, assert_all_mocked=True) as router:
        yield router


@pytest.fixture
async def client() -> Any:
    async with CoordinatorClient(SERVER, KEY) as http:
        yield http


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def make_claim() -> Callable[..., ClaimedTask]:
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
