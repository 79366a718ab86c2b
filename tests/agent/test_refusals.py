"""How the agent copes with the coordinator's refusals: bodies too large (413), too many failed
authentications from its address (429 with Retry-After), and a registration it would refuse."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from taskpost.agent.client import retry_after_s
from taskpost.agent.errors import AuthError, CoordinatorUnavailable
from taskpost.agent.handlers import TaskContext
from taskpost.agent.runner import run_agent
from taskpost.agent.settings import AgentSettings
from taskpost.agent.shutdown import Shutdown
from taskpost.protocol import WorkerRegister
from tests.agent.live import LiveCoordinator, coordinator_settings, eventually, live_coordinator

pytestmark = pytest.mark.anyio

KIB = 1024


class Padded:
    """Returns a result of ``params["size"]`` characters; every task waits for the others first,
    so that their completions are reported together."""

    task_type = "noop"

    def __init__(self, together: int) -> None:
        self.barrier = threading.Barrier(together)

    def setup(self, settings: object) -> None: ...

    def run(self, ctx: TaskContext) -> Any:
        with contextlib.suppress(threading.BrokenBarrierError):
            self.barrier.wait(timeout=10)
        return {"pad": "x" * int(ctx.params["size"])}


@pytest.fixture
async def small_bodies(tmp_path: Path) -> AsyncIterator[LiveCoordinator]:
    """A coordinator that takes JSON bodies of 32 KiB at most."""
    settings = coordinator_settings(tmp_path / "coordinator", max_json_bytes=32 * KIB)
    async with live_coordinator(settings) as coordinator:
        yield coordinator


async def test_completions_too_large_together_are_split_and_one_too_large_alone_fails_the_job(
    small_bodies: LiveCoordinator, make_settings: Callable[..., AgentSettings]
) -> None:
    live = small_bodies
    fitting = [await live.submit(params={"size": 20 * KIB}) for _ in range(4)]  # any two: over 32 KiB
    too_large = await live.submit(params={"size": 40 * KIB})
    settings = make_settings(task_types=["noop"], max_concurrent=5, claim_linger_s=1.0)
    shutdown = Shutdown()
    async with live.client() as client:
        running = asyncio.ensure_future(
            run_agent(
                settings,
                handlers={"noop": Padded(5)},
                client=client,
                shutdown=shutdown,
                install_signals=False,
            )
        )
        try:
            for job in fitting:
                done = await live.wait_state(job["id"], "completed")
                assert len(done["result"]["pad"]) == 20 * KIB
            failed = await live.wait_state(too_large["id"], "dead")
        finally:
            shutdown.request()
        assert await running == 0
    assert failed["error"]["kind"] == "result_too_large" and failed["error"]["retryable"] is False
    assert "TASKPOST_MAX_JSON_BYTES" in failed["error"]["message"]


@pytest.fixture
async def strict_auth(tmp_path: Path) -> AsyncIterator[LiveCoordinator]:
    """A coordinator that refuses an address for a second after two failed authentications."""
    settings = coordinator_settings(
        tmp_path / "coordinator", auth_failure_burst=2, auth_failure_rate_per_s=1.0
    )
    async with live_coordinator(settings) as coordinator:
        yield coordinator


async def lock_out_our_address(live: LiveCoordinator) -> None:
    async with live.client("tp_w_a-wrong-key") as stranger:
        for _ in range(2):
            with pytest.raises(AuthError):
                await stranger.register(WorkerRegister(task_types=["noop"]))


async def test_a_429_stops_every_request_until_its_retry_after(strict_auth: LiveCoordinator) -> None:
    await lock_out_our_address(strict_auth)
    async with strict_auth.client() as client:
        with pytest.raises(CoordinatorUnavailable) as refused:
            await client.register(WorkerRegister(task_types=["noop"]))
        assert "429" in str(refused.value) and refused.value.retry_after_s == 1.0
        with pytest.raises(CoordinatorUnavailable, match="not sent") as held:
            await client.heartbeat("w_any", [])
        assert held.value.retry_after_s is not None and 0 < held.value.retry_after_s <= 1.0


async def test_the_agent_waits_for_retry_after_instead_of_its_own_shorter_back_off(
    strict_auth: LiveCoordinator,
    make_settings: Callable[..., AgentSettings],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level("INFO")
    await lock_out_our_address(strict_auth)
    shutdown, settings = Shutdown(), make_settings(task_types=["noop"])
    async with strict_auth.client() as client:
        # A poll interval of 10 ms: without Retry-After it would retry several times within a second.
        running = asyncio.ensure_future(
            run_agent(settings, client=client, shutdown=shutdown, install_signals=False)
        )

        async def registered() -> bool:  # the coordinator is not asked: it refuses this address too
            return any(getattr(record, "action", None) == "registered" for record in caplog.records)

        try:
            await eventually(registered, "the agent to register once the address is let in")
        finally:
            shutdown.request()
        assert await running == 0
    retries = [record for record in caplog.records if getattr(record, "action", None) == "register_retry"]
    assert len(retries) == 1, [record.getMessage() for record in retries]
    assert "429" in retries[0].getMessage()


def test_retry_after_is_read_as_seconds_or_as_a_date() -> None:
    def answer(value: str) -> httpx.Response:
        return httpx.Response(429, headers={"Retry-After": value})

    assert retry_after_s(answer("7")) == 7.0
    in_a_minute = format_datetime(datetime.now(UTC) + timedelta(seconds=60), usegmt=True)
    assert 55 < (retry_after_s(answer(in_a_minute)) or 0) <= 60
    assert retry_after_s(answer("soon")) is None and retry_after_s(answer("-3")) is None
    assert retry_after_s(httpx.Response(429)) is None


async def test_settings_the_coordinator_would_refuse_at_registration_exit_2(
    live: LiveCoordinator, make_settings: Callable[..., AgentSettings], caplog: pytest.LogCaptureFixture
) -> None:
    settings = make_settings(task_types=["noop"], labels=["x" * 2000])
    async with live.client() as client:
        assert await run_agent(settings, client=client, shutdown=Shutdown(), install_signals=False) == 2
    [line] = [record.getMessage() for record in caplog.records if record.levelname == "CRITICAL"]
    assert "registration would be refused" in line and "TASKPOST_LABELS" in line
    assert await live.workers() == []
