"""One attempt through TaskRunner: inputs, handler, outputs and the completion it queues.

Tasks whose files travel are claimed from the real coordinator; tasks that never reach it (a
handler that fails, times out or is cancelled) are made as data.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from taskpost.agent.backoff import Backoff
from taskpost.agent.client import CoordinatorClient
from taskpost.agent.handlers import CancelReason, Handler, TaskContext
from taskpost.agent.handlers.noop import NoopHandler
from taskpost.agent.outbox import Outbox
from taskpost.agent.state import AgentState, RunningTask
from taskpost.agent.task_runner import TaskRunner
from taskpost.launch import free_port
from taskpost.protocol import ClaimedTask, CompletionAck, InputFile, Outcome, TaskCompletion
from tests.agent.conftest import sha256
from tests.agent.live import LiveCoordinator

pytestmark = pytest.mark.anyio


class Crash:
    task_type = "crash"

    def setup(self, settings: object) -> None: ...

    def run(self, ctx: TaskContext) -> Any:
        raise RuntimeError("kaboom")


class AsyncEcho:
    task_type = "async_echo"

    def setup(self, settings: object) -> None: ...

    async def run(self, ctx: TaskContext) -> Any:
        await asyncio.sleep(0)
        return {"async": True, "params": ctx.params}


class Opaque:
    task_type = "opaque"

    def setup(self, settings: object) -> None: ...

    def run(self, ctx: TaskContext) -> Any:
        return object()


class Harness:
    def __init__(self, client: CoordinatorClient, work_root: Path) -> None:
        async def unused(completions: Any) -> list[CompletionAck]:
            raise AssertionError("the outbox is not flushed in these tests")

        self.state = AgentState()
        self.outbox = Outbox(unused, Backoff(0.01))
        handlers: dict[str, Handler] = {
            "noop": NoopHandler(),
            "crash": Crash(),
            "async_echo": AsyncEcho(),
            "opaque": Opaque(),
        }
        self.work_root = work_root
        self.runner = TaskRunner(client, self.state, self.outbox, handlers, work_root)

    def start(self, claim: ClaimedTask) -> RunningTask:
        task = RunningTask.from_claim(claim, received=time.monotonic(), lease_s=30)
        self.state.running[claim.job_id] = task
        return task

    async def run(self, claim: ClaimedTask) -> TaskCompletion | None:
        await self.runner.run(self.start(claim))
        assert claim.job_id not in self.state.running
        assert self.state.slot_freed.is_set()
        assert not self.work_root.exists() or list(self.work_root.iterdir()) == []  # nothing left
        pending = self.outbox.pending()
        return pending[-1] if pending else None


@pytest.fixture
def harness(client: CoordinatorClient, tmp_path: Path) -> Harness:
    return Harness(client, tmp_path / "work")


async def test_success_downloads_inputs_and_uploads_outputs(
    harness: Harness, live: LiveCoordinator, client: CoordinatorClient
) -> None:
    data = b"input bytes"
    params = {"outputs": {"b.txt": "bee", "a.txt": "ay"}, "echo_inputs": True}
    worker_id, claim = await live.claim(client, params=params, inputs=[await live.upload("in.dat", data)])
    completion = await harness.run(claim)
    assert completion is not None
    assert completion.outcome is Outcome.SUCCEEDED
    assert completion.lease_token == claim.lease_token
    assert completion.result["inputs"]["in.dat"] == {"sha256": sha256(data), "size": len(data)}
    [ack] = (await client.complete(worker_id, [completion])).acks
    assert ack.accepted
    job = await live.job(claim.job_id)
    assert job["state"] == "completed"
    assert sorted(output["name"] for output in job["outputs"]) == ["a.txt", "b.txt"]
    assert await live.output(claim.job_id, "a.txt") == b"ay"
    assert await live.output(claim.job_id, "b.txt") == b"bee"


async def test_handler_error_fails_with_its_retry_wishes(
    harness: Harness, make_claim: Callable[..., ClaimedTask]
) -> None:
    completion = await harness.run(make_claim({"fail": "nope", "fail_retryable": False, "retry_delay_s": 9}))
    assert completion is not None
    assert completion.outcome is Outcome.FAILED
    assert completion.error_message == "nope"
    assert completion.error_kind == "noop_failure"
    assert completion.retryable is False and completion.retry_delay_s == 9


async def test_unexpected_exception_is_a_retryable_failure_with_traceback(
    harness: Harness, make_claim: Callable[..., ClaimedTask]
) -> None:
    completion = await harness.run(make_claim(type="crash"))
    assert completion is not None
    assert completion.outcome is Outcome.FAILED and completion.retryable is True
    assert completion.error_kind == "RuntimeError"
    assert completion.traceback is not None and "kaboom" in completion.traceback


async def test_async_handlers_are_awaited(harness: Harness, make_claim: Callable[..., ClaimedTask]) -> None:
    completion = await harness.run(make_claim({"x": 1}, type="async_echo"))
    assert completion is not None and completion.result == {"async": True, "params": {"x": 1}}


async def test_result_must_be_json(harness: Harness, make_claim: Callable[..., ClaimedTask]) -> None:
    completion = await harness.run(make_claim(type="opaque"))
    assert completion is not None
    assert completion.outcome is Outcome.FAILED
    assert completion.error_kind == "bad_result" and completion.retryable is False


async def test_timeout_stops_the_handler_and_fails_retryably(
    harness: Harness, make_claim: Callable[..., ClaimedTask]
) -> None:
    claim = make_claim({"sleep_s": 60}, timeout_s=0.05)
    task = harness.start(claim)
    await harness.runner.run(task)
    completion = harness.outbox.pending()[-1]
    assert completion.outcome is Outcome.FAILED
    assert completion.error_kind == "timeout" and completion.retryable is True
    assert task.ctx.is_cancelled() and task.ctx.cancel_reason is CancelReason.TIMEOUT


async def test_cancel_request_reports_cancelled(
    harness: Harness, make_claim: Callable[..., ClaimedTask]
) -> None:
    task = harness.start(make_claim({"sleep_s": 60}))
    running = asyncio.ensure_future(harness.runner.run(task))
    task.cancel(CancelReason.CANCEL_REQUESTED)
    await running
    [completion] = harness.outbox.pending()
    assert completion.outcome is Outcome.CANCELLED and completion.job_id == task.job_id


@pytest.mark.parametrize("reason", [CancelReason.LEASE_LOST, CancelReason.SHUTDOWN])
async def test_lost_or_released_leases_drop_the_result(
    harness: Harness, make_claim: Callable[..., ClaimedTask], reason: CancelReason
) -> None:
    task = harness.start(make_claim({"sleep_s": 60}))
    running = asyncio.ensure_future(harness.runner.run(task))
    task.cancel(reason)
    await running
    assert harness.outbox.pending() == []
    assert task.job_id not in harness.state.running


async def test_an_upload_after_the_lease_expired_drops_the_result(
    harness: Harness, live: LiveCoordinator, client: CoordinatorClient
) -> None:
    _, claim = await live.claim(client, params={"outputs": {"a.txt": "x"}})
    assert await live.expire_leases() == 1  # the coordinator took the task back
    assert await harness.run(claim) is None
    job = await live.job(claim.job_id)
    assert job["state"] != "completed" and job["outputs"] == []


async def test_input_digest_mismatch_fails_retryably(
    harness: Harness, live: LiveCoordinator, client: CoordinatorClient
) -> None:
    _, claim = await live.claim(client, inputs=[await live.upload("in.dat", b"what the server has")])
    announced = InputFile(name="in.dat", size=8, sha256=sha256(b"expected"))
    completion = await harness.run(claim.model_copy(update={"inputs": [announced]}))
    assert completion is not None
    assert completion.outcome is Outcome.FAILED
    assert completion.error_kind == "input_integrity" and completion.retryable is True


async def test_unreachable_upload_fails_retryably(
    tmp_path: Path, make_claim: Callable[..., ClaimedTask]
) -> None:
    async with CoordinatorClient(f"http://127.0.0.1:{free_port()}", "key") as nowhere:
        harness = Harness(nowhere, tmp_path / "work")
        completion = await harness.run(make_claim({"outputs": {"a.txt": "x"}}))
    assert completion is not None
    assert completion.outcome is Outcome.FAILED
    assert completion.error_kind == "output_upload" and completion.retryable is True
