"""Event streams across two coordinator replicas on one PostgreSQL: a job submitted and run
through replica A is followed live from replica B (LISTEN/NOTIFY on the events channel)."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from taskpost.client import streams
from taskpost.launch import ChildProcess, child_env
from taskpost.protocol import JobStreamEvent
from tests.e2e.conftest import ADMIN_KEY
from tests.e2e.test_replicas_postgres import Replica


@pytest.fixture
def two_replicas(postgres_url: str, tmp_path: Path) -> Iterator[list[Replica]]:
    started = [Replica(index, postgres_url, tmp_path / "blobs", tmp_path) for index in range(2)]
    try:
        for replica in started:
            replica.start()
        yield started
    finally:
        for replica in started:
            replica.process.stop(signal.SIGTERM)


def admin(url: str) -> httpx.Client:
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=30)


def test_submit_on_one_replica_stream_from_the_other(two_replicas: list[Replica], tmp_path: Path) -> None:
    a, b = two_replicas
    with admin(a.url) as http_a, admin(b.url) as http_b:
        feed: list[JobStreamEvent] = []
        done = threading.Event()

        def read_feed() -> None:
            for event in streams.stream(
                http_b,
                streams.FEED_PATH,
                params=streams.feed_params("noop"),
                last_event_id=0,
                stop_at_end=False,
            ):
                feed.append(event)
                if event.kind == "state" and event.state is not None and event.state.value == "completed":
                    done.set()
                    return

        threading.Thread(target=read_feed, daemon=True).start()
        worker_key = http_a.post("/api/v1/keys", json={"role": "worker"}).json()["key"]
        response = http_a.post("/api/v1/jobs", json={"type": "noop", "params": {"sleep_s": 1.5}})
        assert response.status_code == 201, response.text
        job_id = response.json()["job"]["id"]
        job_events: list[JobStreamEvent] = []
        follower = threading.Thread(
            target=lambda: job_events.extend(streams.stream(http_b, streams.job_path(job_id))), daemon=True
        )
        follower.start()
        args = ["agent", "--server-url", a.url, "--name", "agent-a", "--health-port", "0"]
        agent = ChildProcess(
            args, child_env({"TASKPOST_API_KEY": worker_key}), tmp_path / "agent.log"
        ).start()
        try:
            assert done.wait(timeout=60), f"B's feed did not see the job complete: {feed}"
            follower.join(timeout=30)
            assert not follower.is_alive()
        finally:
            agent.stop(signal.SIGINT)

    mine = [e for e in feed if e.job_id == job_id]
    assert [e.state.value for e in mine if e.kind == "state" and e.state] == [
        "queued",
        "processing",
        "completed",
    ]
    assert any(e.kind == "progress" for e in mine)
    assert all(e.namespace == "default" and e.type == "noop" for e in mine)
    states = [e.state.value for e in job_events if e.kind == "state" and e.state]
    assert states == ["queued", "processing", "completed"]
    assert any(e.kind == "progress" for e in job_events)
