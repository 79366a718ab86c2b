"""The whole agent (run_agent) against a scripted coordinator behind respx."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import respx

from agent.client import CoordinatorClient
from agent.runner import run_agent
from agent.settings import AgentSettings
from agent.shutdown import Shutdown
from protocol import ClaimedTask, Outcome, TaskCompletion

pytestmark = pytest.mark.anyio

CADENCE = {"heartbeat_interval_s": 0.05, "long_poll_s": 0.2, "lease_s": 30}


class ScriptedCoordinator:
    """Just enough of the agent API to drive an agent: a task queue, leases, cancels, outages."""

    def __init__(self, router: respx.MockRouter) -> None:
        self.queue: list[ClaimedTask] = []
        self.completions: list[TaskCompletion] = []
        self.released: list[str] = []
        self.heartbeats: list[list[str]] = []
        self.registrations = 0
        self.deregistered: list[str] = []
        self.worker_ids: set[str] = set()
        self.cancel: set[str] = set()
        self.lost: set[str] = set()
        self.down = False
        self.refused_while_down = 0
        self.auth_ok = True
        self.changed = asyncio.Event()
        router.post("/workers/register").mock(side_effect=self._register)
        router.post(url__regex=r"/workers/[^/]+/claim$").mock(side_effect=self._claim)
        router.post(url__regex=r"/workers/[^/]+/complete$").mock(side_effect=self._complete)
        router.post(url__regex=r"/workers/[^/]+/heartbeat$").mock(side_effect=self._heartbeat)
        router.post(url__regex=r"/workers/[^/]+/release$").mock(side_effect=self._release)
        router.delete(url__regex=r"/workers/[^/]+$").mock(side_effect=self._deregister)
        router.put(url__regex=r"/tasks/[^/]+/outputs/.+").respond(
            201, json={"name": "out", "size": 1, "sha256": "0" * 64}
        )

    async def until(self, predicate: Callable[[], bool], timeout_s: float = 10.0) -> None:
        """Wait (event-driven) until ``predicate()`` holds after some request."""
        async with asyncio.timeout(timeout_s):
            while not predicate():
                self.changed.clear()
                await self.changed.wait()

    def completion(self, job_id: str) -> TaskCompletion | None:
        return next((c for c in self.completions if c.job_id == job_id), None)

    # -- routes -----------------------------------------------------------------------------
    def _gate(self, request: httpx.Request) -> httpx.Response | None:
        self.changed.set()
        if not self.auth_ok:
            return httpx.Response(401, json={"error": {"code": "unauthorized", "message": "bad key"}})
        if self.down:
            self.refused_while_down += 1
            return httpx.Response(503, json={"error": {"code": "unavailable", "message": "down"}})
        parts = request.url.path.split("/")
        if "workers" in parts and parts[-1] != "register":
            worker_id = parts[parts.index("workers") + 1]
            if worker_id not in self.worker_ids:
                return httpx.Response(404, json={"error": {"code": "worker_not_found", "message": "?"}})
        return None

    def _register(self, request: httpx.Request) -> httpx.Response:
        if (refused := self._gate(request)) is not None:
            return refused
        self.registrations += 1
        worker_id = f"w{self.registrations}"
        self.worker_ids.add(worker_id)
        return httpx.Response(201, json={"worker_id": worker_id, "cadence": CADENCE})

    def _acks(self, completions: list[dict[str, Any]]) -> list[dict[str, Any]]:
        acks = []
        for raw in completions:
            completion = TaskCompletion.model_validate(raw)
            self.completions.append(completion)
            acks.append({"job_id": completion.job_id, "accepted": True, "state": completion.outcome.value})
        return acks

    async def _claim(self, request: httpx.Request) -> httpx.Response:
        if (refused := self._gate(request)) is not None:
            return refused
        body = json.loads(request.content)
        acks = self._acks(body["completions"])
        if not self.queue and not acks:  # hold like a long poll
            await asyncio.sleep(body["wait_s"])
        tasks, self.queue = self.queue[: body["max_tasks"]], self.queue[body["max_tasks"] :]
        self.changed.set()
        if not tasks and not acks:
            return httpx.Response(204)
        return httpx.Response(
            200, json={"tasks": [t.model_dump(mode="json") for t in tasks], "acks": acks, "drain": False}
        )

    def _complete(self, request: httpx.Request) -> httpx.Response:
        if (refused := self._gate(request)) is not None:
            return refused
        return httpx.Response(200, json={"acks": self._acks(json.loads(request.content)["completions"])})

    def _heartbeat(self, request: httpx.Request) -> httpx.Response:
        if (refused := self._gate(request)) is not None:
            return refused
        tasks = json.loads(request.content)["tasks"]
        self.heartbeats.append([t["job_id"] for t in tasks])
        statuses = [
            {
                "job_id": t["job_id"],
                "lease_valid": t["job_id"] not in self.lost,
                "cancel_requested": t["job_id"] in self.cancel,
            }
            for t in tasks
        ]
        return httpx.Response(200, json={"tasks": statuses, "drain": False})

    def _release(self, request: httpx.Request) -> httpx.Response:
        if (refused := self._gate(request)) is not None:
            return refused
        jobs = [t["job_id"] for t in json.loads(request.content)["tasks"]]
        self.released.extend(jobs)
        return httpx.Response(200, json={"acks": [{"job_id": j, "accepted": True} for j in jobs]})

    def _deregister(self, request: httpx.Request) -> httpx.Response:
        if (refused := self._gate(request)) is not None:
            return refused
        self.deregistered.append(request.url.path.rsplit("/", 1)[1])
        return httpx.Response(204)


@pytest.fixture
def fake(coordinator: respx.MockRouter) -> ScriptedCoordinator:
    return ScriptedCoordinator(coordinator)


@pytest.fixture
def start_agent(
    make_settings: Callable[..., AgentSettings], client: CoordinatorClient
) -> Callable[..., tuple[asyncio.Future[int], Shutdown]]:
    def start(**overrides: Any) -> tuple[asyncio.Future[int], Shutdown]:
        shutdown = Shutdown()
        settings = make_settings(**overrides)
        running = asyncio.ensure_future(
            run_agent(settings, client=client, shutdown=shutdown, install_signals=False)
        )
        return running, shutdown

    return start


async def test_claims_runs_and_reports_a_task(
    fake: ScriptedCoordinator,
    start_agent: Callable[..., tuple[asyncio.Future[int], Shutdown]],
    make_claim: Callable[..., ClaimedTask],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level("INFO")
    claim = make_claim({"outputs": {"out.txt": "x"}, "n": 1})
    fake.queue.append(claim)
    running, shutdown = start_agent()
    await fake.until(lambda: fake.completion(claim.job_id) is not None)
    completion = fake.completion(claim.job_id)
    assert completion is not None and completion.outcome is Outcome.SUCCEEDED
    assert completion.lease_token == claim.lease_token
    assert completion.result["params"]["n"] == 1
    shutdown.request()
    assert await running == 0
    assert fake.deregistered == ["w1"]
    messages = [record.getMessage() for record in caplog.records]
    assert "Waiting for tasks" in messages
    assert messages.index("Waiting for tasks") > next(
        i for i, m in enumerate(messages) if m == "starting agent"
    )


async def test_refused_api_key_exits_2(
    fake: ScriptedCoordinator,
    start_agent: Callable[..., tuple[asyncio.Future[int], Shutdown]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    fake.auth_ok = False
    running, _ = start_agent()
    assert await running == 2
    assert "TASKPOST_API_KEY" in caplog.text


async def test_graceful_shutdown_lets_running_tasks_finish(
    fake: ScriptedCoordinator,
    start_agent: Callable[..., tuple[asyncio.Future[int], Shutdown]],
    make_claim: Callable[..., ClaimedTask],
) -> None:
    claim = make_claim({"sleep_s": 0.3})
    fake.queue.append(claim)
    running, shutdown = start_agent()
    await fake.until(lambda: any(claim.job_id in beat for beat in fake.heartbeats))
    shutdown.request()
    assert await running == 0
    completion = fake.completion(claim.job_id)
    assert completion is not None and completion.outcome is Outcome.SUCCEEDED
    assert fake.released == [] and fake.deregistered == ["w1"]


@pytest.mark.parametrize("how", ["second signal", "grace expired"])
async def test_forced_shutdown_releases_running_tasks(
    fake: ScriptedCoordinator,
    start_agent: Callable[..., tuple[asyncio.Future[int], Shutdown]],
    make_claim: Callable[..., ClaimedTask],
    how: str,
) -> None:
    claim = make_claim({"sleep_s": 60})
    fake.queue.append(claim)
    running, shutdown = start_agent(shutdown_grace_s=30 if how == "second signal" else 0.05)
    await fake.until(lambda: any(claim.job_id in beat for beat in fake.heartbeats))
    shutdown.request()
    if how == "second signal":
        shutdown.request()
    assert await running == 1
    assert fake.released == [claim.job_id]
    assert fake.completion(claim.job_id) is None
    assert fake.deregistered == ["w1"]


async def test_cancel_requested_by_heartbeat(
    fake: ScriptedCoordinator,
    start_agent: Callable[..., tuple[asyncio.Future[int], Shutdown]],
    make_claim: Callable[..., ClaimedTask],
) -> None:
    claim = make_claim({"sleep_s": 60})
    fake.queue.append(claim)
    fake.cancel.add(claim.job_id)
    running, shutdown = start_agent()
    await fake.until(lambda: fake.completion(claim.job_id) is not None)
    completion = fake.completion(claim.job_id)
    assert completion is not None and completion.outcome is Outcome.CANCELLED
    shutdown.request()
    assert await running == 0


async def test_lost_lease_drops_the_task(
    fake: ScriptedCoordinator,
    start_agent: Callable[..., tuple[asyncio.Future[int], Shutdown]],
    make_claim: Callable[..., ClaimedTask],
) -> None:
    claim = make_claim({"sleep_s": 60})
    fake.queue.append(claim)
    fake.lost.add(claim.job_id)
    running, shutdown = start_agent()
    await fake.until(lambda: any(claim.job_id in beat for beat in fake.heartbeats))
    await fake.until(lambda: fake.heartbeats[-1] == [])  # the agent no longer holds it
    shutdown.request()
    assert await running == 0
    assert fake.completion(claim.job_id) is None and fake.released == []


async def test_registers_again_when_the_coordinator_forgets_the_worker(
    fake: ScriptedCoordinator,
    start_agent: Callable[..., tuple[asyncio.Future[int], Shutdown]],
    make_claim: Callable[..., ClaimedTask],
) -> None:
    running, shutdown = start_agent()
    await fake.until(lambda: fake.registrations == 1 and len(fake.heartbeats) > 0)
    fake.worker_ids.clear()  # the coordinator lost its worker table
    claim = make_claim()
    fake.queue.append(claim)
    await fake.until(lambda: fake.completion(claim.job_id) is not None)
    assert fake.registrations >= 2
    shutdown.request()
    assert await running == 0


async def test_completion_survives_a_coordinator_outage(
    fake: ScriptedCoordinator,
    start_agent: Callable[..., tuple[asyncio.Future[int], Shutdown]],
    make_claim: Callable[..., ClaimedTask],
) -> None:
    claim = make_claim({"sleep_s": 0.1})
    fake.queue.append(claim)
    running, shutdown = start_agent()
    await fake.until(lambda: any(claim.job_id in beat for beat in fake.heartbeats))
    fake.down = True
    await fake.until(lambda: fake.refused_while_down >= 5)
    assert fake.completion(claim.job_id) is None
    fake.down = False
    await fake.until(lambda: fake.completion(claim.job_id) is not None)
    shutdown.request()
    assert await running == 0
