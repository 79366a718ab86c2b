"""What handlers produce, against the coordinator's strict request models.

The coordinator refuses text that UTF-8 cannot encode, numbers that are not finite and texts
over their field's length. A result holding such values is a failed attempt (``bad_result``);
an error or progress message holding them is escaped and cut, and still reported.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from typing import Any

import pytest

from taskpost.agent.backoff import Backoff
from taskpost.agent.client import CoordinatorClient
from taskpost.agent.handlers import HandlerError, TaskContext
from taskpost.agent.outbox import Outbox
from taskpost.agent.runner import run_agent
from taskpost.agent.settings import AgentSettings
from taskpost.agent.shutdown import Shutdown
from taskpost.agent.state import AgentState, RunningTask
from taskpost.agent.task_runner import TaskRunner
from taskpost.protocol import MAX_ERROR_TEXT_LENGTH, ClaimedTask, CompletionAck, Outcome, TaskCompletion
from tests.agent.live import LiveCoordinator, eventually

pytestmark = pytest.mark.anyio

SURROGATE_NAME = b"interview-\xff.wav".decode("utf-8", "surrogateescape")
"""A file name that is not UTF-8, as Python reads it from a POSIX directory."""


class Returns:
    """A handler that returns a value the test chose."""

    task_type = "noop"

    def __init__(self, value: Any) -> None:
        self.value = value

    def setup(self, settings: object) -> None: ...

    def run(self, ctx: TaskContext) -> Any:
        return self.value


class Raises:
    """A handler that raises an exception the test chose."""

    task_type = "noop"

    def __init__(self, error: Exception) -> None:
        self.error = error

    def setup(self, settings: object) -> None: ...

    def run(self, ctx: TaskContext) -> Any:
        raise self.error


async def attempt(client: CoordinatorClient, claim: ClaimedTask, handler: Any, tmp: Any) -> TaskCompletion:
    """One attempt of ``claim`` with ``handler``; the completion it would report."""

    async def unused(completions: Any) -> list[CompletionAck]:
        raise AssertionError("sent by the test itself")

    state, outbox = AgentState(), Outbox(unused, Backoff(0.01))
    runner = TaskRunner(client, state, outbox, {"noop": handler}, tmp / "work")
    task = RunningTask.from_claim(claim, received=time.monotonic(), lease_s=30)
    state.running[claim.job_id] = task
    await runner.run(task)
    [completion] = outbox.pending()
    return completion


async def report(
    live: LiveCoordinator, client: CoordinatorClient, worker_id: str, completion: TaskCompletion
) -> dict[str, Any]:
    """Send ``completion`` to the coordinator; the job once it took it."""
    [ack] = (await client.complete(worker_id, [completion])).acks
    assert ack.accepted, ack
    return await live.job(completion.job_id)


@pytest.mark.parametrize(
    "result",
    [
        {"score": math.nan},
        {"scores": [1.0, math.inf]},
        {"file": SURROGATE_NAME},
        {SURROGATE_NAME: 1},
    ],
    ids=["nan", "infinity", "surrogate-value", "surrogate-key"],
)
async def test_a_result_json_cannot_carry_is_a_bad_result_not_retried(
    live: LiveCoordinator, client: CoordinatorClient, tmp_path: Any, result: dict[str, Any]
) -> None:
    worker_id, claim = await live.claim(client)
    completion = await attempt(client, claim, Returns(result), tmp_path)
    assert completion.outcome is Outcome.FAILED
    assert completion.error_kind == "bad_result" and completion.retryable is False
    assert "result" in (completion.error_message or "")
    job = await report(live, client, worker_id, completion)
    assert job["state"] == "dead" and job["error"]["kind"] == "bad_result"


@pytest.mark.parametrize(
    "error",
    [
        RuntimeError(f"cannot open {SURROGATE_NAME}"),
        HandlerError(f"cannot open {SURROGATE_NAME}", kind="bad_input", retryable=False),
        RuntimeError("x" * 1_000_000),
        HandlerError("y" * 1_000_000, kind="k" * 1000, retry_delay_s=math.nan),
    ],
    ids=["surrogate", "surrogate-handler-error", "1MB", "1MB-handler-error"],
)
async def test_an_error_whose_text_the_coordinator_would_refuse_is_still_reported(
    live: LiveCoordinator, client: CoordinatorClient, tmp_path: Any, error: Exception
) -> None:
    worker_id, claim = await live.claim(client)
    completion = await attempt(client, claim, Raises(error), tmp_path)
    assert completion.outcome is Outcome.FAILED
    message = completion.error_message or ""
    assert completion.error_kind != "agent_error", message
    assert len(message) <= MAX_ERROR_TEXT_LENGTH
    assert len(completion.traceback or "") <= MAX_ERROR_TEXT_LENGTH
    if "cannot open" in str(error):
        assert message.endswith("cannot open interview-\\udcff.wav")
    else:
        assert len(message) == MAX_ERROR_TEXT_LENGTH
    job = await report(live, client, worker_id, completion)
    assert job["error"]["message"] == message
    assert job["error"]["kind"] == completion.error_kind


class ReportsProgress:
    """Reports a progress message naming a non-UTF-8 file, then waits to be cancelled."""

    task_type = "noop"

    def setup(self, settings: object) -> None: ...

    def run(self, ctx: TaskContext) -> Any:
        ctx.heartbeat(0.5, f"reading {SURROGATE_NAME}")
        ctx.wait_cancelled(60)
        return None


async def test_a_progress_message_the_coordinator_would_refuse_is_escaped_and_the_agent_goes_on(
    live: LiveCoordinator, client: CoordinatorClient, make_settings: Callable[..., AgentSettings]
) -> None:
    job = await live.submit()
    shutdown = Shutdown()
    running = asyncio.ensure_future(
        run_agent(
            make_settings(),
            handlers={"noop": ReportsProgress()},
            client=client,
            shutdown=shutdown,
            install_signals=False,
        )
    )

    async def progress_arrived() -> dict[str, Any] | None:
        found = await live.job(job["id"])
        return found if found["progress_message"] else None

    try:
        seen = await eventually(progress_arrived, "the progress message to reach the coordinator")
        assert seen["progress_message"] == "reading interview-\\udcff.wav" and seen["progress"] == 0.5
        await live.cancel(job["id"])
        await live.wait_state(job["id"], "cancelled")
        assert not running.done(), "the agent keeps running"
    finally:
        shutdown.request()
    assert await running == 0
