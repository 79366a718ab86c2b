"""An agent whose coordinator goes away: a real uvicorn on 127.0.0.1, stopped and started again."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest

from taskpost.agent.runner import run_agent
from taskpost.agent.settings import AgentSettings
from taskpost.agent.shutdown import Shutdown
from taskpost.launch import free_port
from taskpost.protocol import API_PREFIX
from taskpost.server.settings import Settings
from tests.agent.live import coordinator_settings, eventually, listening_socket, new_key, served_coordinator

pytestmark = pytest.mark.anyio


class RestartableCoordinator:
    """The coordinator on one address of 127.0.0.1, which a test can stop and start again."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.port = 0  # a free one on the first start, the same one after
        self.url = ""
        self._serving: AsyncExitStack | None = None

    async def start(self) -> None:
        sock = listening_socket(self.port)
        self.port = sock.getsockname()[1]
        self._serving = AsyncExitStack()
        self.url = await self._serving.enter_async_context(served_coordinator(self.settings, sock))

    async def stop(self) -> None:
        if self._serving is not None:
            await self._serving.aclose()
            self._serving = None

    async def request(self, method: str, path: str, key: str, **kwargs: Any) -> dict[str, Any]:
        async with httpx.AsyncClient(base_url=self.url + API_PREFIX) as http:
            response = await http.request(method, path, headers={"Authorization": f"Bearer {key}"}, **kwargs)
        assert response.status_code < 300, response.text
        body: dict[str, Any] = response.json()
        return body

    def job_in(self, job_id: str, key: str, state: str) -> Callable[[], Awaitable[dict[str, Any] | None]]:
        """A check for ``eventually``: the job once it is in ``state``."""

        async def check() -> dict[str, Any] | None:
            job = await self.request("GET", f"/jobs/{job_id}", key)
            return job if job["state"] == state else None

        return check


@pytest.fixture
async def coordinator(tmp_path: Path) -> AsyncIterator[RestartableCoordinator]:
    restartable = RestartableCoordinator(coordinator_settings(tmp_path / "coordinator"))
    await restartable.start()
    try:
        yield restartable
    finally:
        await restartable.stop()


StartAgent = Callable[..., asyncio.Future[int]]


@pytest.fixture
async def agent(
    coordinator: RestartableCoordinator, make_settings: Callable[..., AgentSettings]
) -> AsyncIterator[StartAgent]:
    """Starts ``run_agent`` with its own HTTP client on the coordinator's URL; stopped after the test."""
    shutdown = Shutdown()
    futures: list[asyncio.Future[int]] = []

    def start(**overrides: Any) -> asyncio.Future[int]:
        settings = make_settings(server_url=coordinator.url, task_types=["noop"], **overrides)
        futures.append(asyncio.ensure_future(run_agent(settings, shutdown=shutdown, install_signals=False)))
        return futures[-1]

    yield start
    shutdown.force()
    for running in futures:
        await asyncio.wait_for(running, timeout=30)


async def test_a_completion_survives_a_coordinator_restart(
    coordinator: RestartableCoordinator, agent: StartAgent, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO")
    worker_key = await new_key(coordinator.url, "worker")
    client_key = await new_key(coordinator.url, "client")
    spec = {"type": "noop", "params": {"sleep_s": 0.5}}
    job_id = (await coordinator.request("POST", "/jobs", client_key, json=spec))["job"]["id"]
    agent(api_key=worker_key)
    await eventually(coordinator.job_in(job_id, client_key, "processing"), "the agent to claim the job")
    await coordinator.stop()

    async def finished_while_down() -> bool:
        return any(record.getMessage().startswith("task finished: succeeded") for record in caplog.records)

    await eventually(finished_while_down, "the task to finish while the coordinator is down")
    await coordinator.start()
    done = await eventually(coordinator.job_in(job_id, client_key, "completed"), "the completion to arrive")
    assert done["attempts"] == 1 and done["result"]["params"] == {"sleep_s": 0.5}


async def test_health_says_unreachable_after_a_failed_request_and_reachable_after_a_success(
    coordinator: RestartableCoordinator, agent: StartAgent
) -> None:
    health_port = free_port()
    agent(api_key=await new_key(coordinator.url, "worker"), health_host="127.0.0.1", health_port=health_port)

    def reachable_is(expected: bool) -> Callable[[], Awaitable[dict[str, Any] | None]]:
        async def check() -> dict[str, Any] | None:
            async with httpx.AsyncClient() as http:
                try:
                    response = await http.get(f"http://127.0.0.1:{health_port}/health")
                except httpx.TransportError:
                    return None  # not listening yet
            body: dict[str, Any] = response.json()
            return body if body["coordinator_reachable"] is expected else None

        return check

    up = await eventually(reachable_is(True), "the agent to reach its coordinator")
    assert up["status"] == "ok" and up["worker_id"]
    await coordinator.stop()
    down = await eventually(reachable_is(False), "/health to notice the failed requests")
    assert down["status"] == "ok", "a short outage does not make the agent unhealthy"
    await coordinator.start()
    await eventually(reachable_is(True), "/health to notice the coordinator is back")
