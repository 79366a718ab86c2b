"""Partial output: chunks a handler publishes reach the coordinator once each, even when a
heartbeat's answer is lost, and a ``ProgressWindow`` publishes into its task's output."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from taskpost.agent.client import CoordinatorClient
from taskpost.agent.handlers.base import MAX_PARTIAL_CHUNK_BYTES, TaskContext
from taskpost.agent.heartbeat import Heartbeat, flush_partial
from taskpost.agent.media.progress import ProgressWindow
from taskpost.agent.state import AgentState, RunningTask
from taskpost.protocol import API_PREFIX, Cadence
from tests.agent.live import SERVER_URL, LiveCoordinator

pytestmark = pytest.mark.anyio


class LoseAnswers(httpx.AsyncBaseTransport):
    """Passes requests on; the answers to the next ``lose`` heartbeats never arrive."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.lose = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        if request.url.path.endswith("/heartbeat") and self.lose > 0:
            self.lose -= 1
            raise httpx.ReadError("answer lost", request=request)
        return response


async def partial_events(live: LiveCoordinator, job_id: str) -> list[object]:
    response = await live.api.http.get(
        f"{API_PREFIX}/jobs/{job_id}/events", params={"all": "true"}, headers=live.api.auth("client")
    )
    assert response.status_code == 200, response.text
    return [event["data"] for event in response.json() if event["kind"] == "partial"]


async def noop_reregister(_worker_id: str) -> None:
    raise AssertionError("the agent should not have to register again")


async def test_chunks_are_stored_once_across_a_lost_heartbeat_answer(live: LiveCoordinator) -> None:
    transport = LoseAnswers(live.transport)
    async with CoordinatorClient(SERVER_URL, live.worker_key, transport=transport) as client:
        worker_id, claim = await live.claim(client)
        task = RunningTask.from_claim(claim, received=0.0, lease_s=30.0)
        cadence = Cadence(heartbeat_interval_s=1, long_poll_s=1, lease_s=30, partial_output=True)
        state = AgentState(worker_id=worker_id, cadence=cadence, running={claim.job_id: task})
        heartbeat = Heartbeat(client, state, noop_reregister, lambda _drain: None)

        task.ctx.publish_partial({"text": "a"})
        task.ctx.publish_partial({"text": "b"})
        assert task.ctx.take_changed()
        transport.lose = 1  # the beat reaches the coordinator; its answer never comes back
        assert await heartbeat.beat() is None
        assert task.ctx.partial_unacknowledged(100) == (0, [{"text": "a"}, {"text": "b"}])

        task.ctx.publish_partial({"text": "c"})
        assert await heartbeat.beat() is not None
        assert task.ctx.partial_unacknowledged(100) == (3, [])
        window = ProgressWindow(task.ctx, 0.5, 1.0)  # as a URL transcription's second step
        window.publish_partial({"text": "d"})
        assert await heartbeat.beat() is not None

    assert await partial_events(live, claim.job_id) == [
        {"index": i, "chunk": {"text": text}} for i, text in enumerate("abcd")
    ]


async def test_an_older_coordinator_gets_no_partial_field(live: LiveCoordinator) -> None:
    async with live.client() as client:
        _, claim = await live.claim(client)
        task = RunningTask.from_claim(claim, received=0.0, lease_s=30.0)
        task.ctx.publish_partial({"text": "kept until a coordinator takes it"})
        assert task.progress().partial == []  # Cadence.partial_output is False by default
        assert task.progress(partial_output=True).partial == [{"text": "kept until a coordinator takes it"}]


def test_oversized_chunks_are_dropped(tmp_path: Path) -> None:
    ctx = TaskContext(job_id="j", task_type="noop", attempt=1, params={}, inputs={}, work_dir=tmp_path)
    ctx.publish_partial("x" * (MAX_PARTIAL_CHUNK_BYTES + 1))
    ctx.publish_partial("fits")
    assert ctx.partial_unacknowledged(10) == (0, ["fits"])


async def test_flush_sends_what_no_heartbeat_carried_yet(live: LiveCoordinator) -> None:
    async with live.client() as client:
        worker_id, claim = await live.claim(client)
        task = RunningTask.from_claim(claim, received=0.0, lease_s=30.0)
        cadence = Cadence(heartbeat_interval_s=10, long_poll_s=1, lease_s=30, partial_output=True)
        state = AgentState(worker_id=worker_id, cadence=cadence, running={claim.job_id: task})
        for text in "xyz":
            task.ctx.publish_partial(text)
        await flush_partial(client, state, task)
        assert task.ctx.partial_unacknowledged(10) == (3, [])
    assert await partial_events(live, claim.job_id) == [{"index": i, "chunk": t} for i, t in enumerate("xyz")]
