"""The whole agent (run_agent) against the real coordinator app, in this process."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from taskpost.agent.client import CoordinatorClient
from taskpost.agent.runner import run_agent
from taskpost.agent.settings import AgentSettings
from taskpost.agent.shutdown import Shutdown
from taskpost.protocol import API_PREFIX
from tests.agent.live import LiveCoordinator, eventually

pytestmark = pytest.mark.anyio

StartAgent = Callable[..., tuple[asyncio.Future[int], Shutdown]]


@pytest.fixture
async def start_agent(
    make_settings: Callable[..., AgentSettings], client: CoordinatorClient
) -> AsyncIterator[StartAgent]:
    """Starts ``run_agent`` (noop tasks) on the live coordinator; returns its exit code future and
    its shutdown. An agent a failed test left running is stopped before the coordinator is."""
    started: list[tuple[asyncio.Future[int], Shutdown]] = []

    def start(
        client_: CoordinatorClient | None = None, **overrides: Any
    ) -> tuple[asyncio.Future[int], Shutdown]:
        shutdown = Shutdown()
        settings = make_settings(**{"task_types": ["noop"], **overrides})
        running = asyncio.ensure_future(
            run_agent(settings, client=client_ or client, shutdown=shutdown, install_signals=False)
        )
        started.append((running, shutdown))
        return running, shutdown

    yield start
    for running, shutdown in started:
        if not running.done():
            shutdown.force()
            await asyncio.wait_for(running, timeout=30)


async def event_kinds(live: LiveCoordinator, job_id: str) -> list[str]:
    return [event["kind"] for event in await live.events(job_id)]


async def test_claims_runs_and_reports_a_task(
    live: LiveCoordinator, start_agent: StartAgent, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO")
    job = await live.submit(params={"outputs": {"out.txt": "x"}, "n": 1})
    running, shutdown = start_agent()
    done = await live.wait_state(job["id"], "completed")
    assert done["result"]["params"]["n"] == 1 and done["attempts"] == 1
    assert await live.output(job["id"], "out.txt") == b"x"
    [worker] = await live.workers()
    assert worker["task_types"] == ["noop"]
    shutdown.request()
    assert await running == 0
    assert await live.workers() == [], "the agent deregisters on its way out"
    messages = [record.getMessage() for record in caplog.records]
    assert messages.index("Waiting for tasks") > messages.index("starting agent")


async def test_refused_api_key_exits_2(
    live: LiveCoordinator, start_agent: StartAgent, caplog: pytest.LogCaptureFixture
) -> None:
    async with live.client("tp_w_not-a-key-of-this-coordinator") as stranger:
        running, _ = start_agent(stranger)
        assert await running == 2
    assert "TASKPOST_API_KEY" in caplog.text
    assert await live.workers() == []


async def test_graceful_shutdown_lets_running_tasks_finish(
    live: LiveCoordinator, start_agent: StartAgent
) -> None:
    job = await live.submit(params={"sleep_s": 0.5})
    running, shutdown = start_agent()
    await live.wait_state(job["id"], "processing")
    shutdown.request()
    assert await running == 0
    assert (await live.job(job["id"]))["state"] == "completed"
    assert "released" not in await event_kinds(live, job["id"])
    assert await live.workers() == []


@pytest.mark.parametrize("how", ["second signal", "grace expired"])
async def test_forced_shutdown_releases_running_tasks(
    live: LiveCoordinator, start_agent: StartAgent, how: str
) -> None:
    job = await live.submit(params={"sleep_s": 60})
    running, shutdown = start_agent(shutdown_grace_s=30 if how == "second signal" else 0.05)
    await live.wait_state(job["id"], "processing")
    shutdown.request()
    if how == "second signal":
        shutdown.request()
    assert await running == 1
    released = await live.job(job["id"])
    assert released["state"] == "queued" and released["result"] is None
    assert "released" in await event_kinds(live, job["id"])
    assert await live.workers() == []


async def test_a_cancel_reaches_the_running_task_through_the_heartbeat(
    live: LiveCoordinator, start_agent: StartAgent
) -> None:
    job = await live.submit(params={"sleep_s": 60})
    running, shutdown = start_agent()
    await live.wait_state(job["id"], "processing")
    await live.cancel(job["id"])
    cancelled = await live.wait_state(job["id"], "cancelled")
    assert cancelled["result"] is None
    shutdown.request()
    assert await running == 0, "nothing was left running to release"


async def test_a_lost_lease_stops_the_task_and_drops_its_result(
    live: LiveCoordinator, start_agent: StartAgent
) -> None:
    job = await live.submit(params={"sleep_s": 60})
    running, shutdown = start_agent(max_concurrent=1)
    await live.wait_state(job["id"], "processing")
    await eventually(live.expire_leases, "the coordinator to take the lease back")
    live.clock.advance(live.api.coord.settings.retry_cap_s + 1)  # the retry is due
    await live.api.reap()

    async def second_attempt() -> bool:
        current = await live.job(job["id"])
        return current["state"] == "processing" and current["attempts"] == 2

    # Its only slot is free again: the agent stopped the first attempt.
    await eventually(second_attempt, "the agent to claim the second attempt")
    shutdown.request()
    shutdown.request()
    assert await running == 1  # the second attempt is released
    assert "stale_completion_refused" not in await event_kinds(live, job["id"])


async def test_registers_again_when_the_coordinator_forgets_the_worker(
    live: LiveCoordinator, start_agent: StartAgent
) -> None:
    running, shutdown = start_agent()
    [first] = await eventually(live.workers, "the agent to register")
    forgotten = await live.api.http.delete(
        f"{API_PREFIX}/workers/{first['id']}", headers=live.api.auth("worker")
    )
    assert forgotten.status_code == 204

    async def registered_again() -> list[dict[str, Any]]:
        return [worker for worker in await live.workers() if worker["id"] != first["id"]]

    [second] = await eventually(registered_again, "the agent to register again")
    job = await live.submit(params={"n": 2})
    assert (await live.wait_state(job["id"], "completed"))["result"]["params"] == {"n": 2}
    shutdown.request()
    assert await running == 0
    assert second["name"] == first["name"]
