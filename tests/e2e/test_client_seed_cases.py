"""The seeds' queue operations with ``taskpost.client``, through a real coordinator and real agent
processes: RQ's enqueue with priority, timeout and retries, job status, queue statistics and
cancel; the doc-transcribe seed's transcription of a URL; and ``taskpost submit`` telling its
user what the coordinator warned about and what ``--wait`` waits for."""

from __future__ import annotations

import itertools
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from taskpost.client import Client, JobFailed
from taskpost.protocol import JobPublic, JobState, Priority
from tests.e2e.conftest import Cluster

pytestmark = [pytest.mark.e2e]


@pytest.fixture
def noop_cluster(cluster: Cluster) -> Cluster:
    cluster.start_agent("--task-type", "noop")
    cluster.wait_agents(1)
    return cluster


@pytest.fixture
def client(noop_cluster: Cluster) -> Iterator[Client]:
    key = noop_cluster.http.post("/keys", json={"role": "client"}).json()["key"]
    with Client(noop_cluster.url, key) as client:
        yield client


def test_enqueue_with_priority_timeout_and_retries_then_status(client: Client) -> None:
    # enqueue_transcription_job(..., priority="high", timeout=600, retry_count=3), then get_job_status.
    submitted = client.submit(
        "noop", {"lexicon_id": "medical-terms-v1"}, priority="high", timeout_s=600, max_attempts=3
    )
    job = submitted.job
    assert submitted.created and submitted.warnings == []
    assert (job.priority, job.timeout_s, job.max_attempts) == (Priority.HIGH, 600.0, 3)
    done = client.wait(job.id, timeout=30)
    status = client.get(job.id)
    assert status.state is JobState.COMPLETED and status.started_at and status.ended_at
    assert status.result == done.result and done.result["params"] == {"lexicon_id": "medical-terms-v1"}

    failing = client.submit("noop", {"fail": "no speech", "retry_delay_s": 0.1}, max_attempts=3)
    seen: list[JobPublic] = []
    with pytest.raises(JobFailed) as failed:
        client.result(failing.job.id, timeout=60)
    dead = client.wait(failing.job.id, timeout=5, on_update=seen.append)
    assert failed.value.job.state is JobState.DEAD and failed.value.job.attempts == 3
    assert [(j.state, j.attempts) for j in seen] == [(JobState.DEAD, 3)]  # already ended: one update
    assert dead.error is not None and dead.error.message == "no speech"


def test_wait_reports_each_move_of_the_job(client: Client) -> None:
    job = client.submit("noop", {"sleep_s": 1.0}).job
    seen: list[JobPublic] = []
    done = client.wait(job.id, timeout=30, on_update=seen.append)
    assert done.state is JobState.COMPLETED
    states = [j.state for j in seen]
    assert states[-1] is JobState.COMPLETED and JobState.PROCESSING in states
    assert all((a.state, a.attempts) != (b.state, b.attempts) for a, b in itertools.pairwise(seen))


def test_cancel_a_queued_and_a_running_job_then_queue_statistics(client: Client) -> None:
    # cancel_job(...) and get_queue_stats(): nothing agent runs carries the label "nowhere".
    queued = client.submit("noop", labels=["nowhere"]).job
    running = client.submit("noop", {"sleep_s": 30.0}).job
    finished = client.submit("noop").job
    assert client.cancel(queued.id).state is JobState.CANCELLED
    job = client.get(running.id)
    while job.state is not JobState.PROCESSING:
        assert not job.state.is_terminal, job
        job = client.get(running.id, wait_s=5)
    client.cancel(running.id)
    assert client.wait(running.id, timeout=30).state is JobState.CANCELLED
    assert client.wait(finished.id, timeout=30).state is JobState.COMPLETED
    still_queued = client.submit("noop", labels=["nowhere"]).job

    stats = client.stats()
    assert stats.totals.get("cancelled") == 2 and stats.totals.get("completed") == 1
    assert stats.totals.get("queued") == 1
    counts = {(c.type, c.priority, c.state): c.count for c in stats.counts}
    assert counts[("noop", "default", "cancelled")] == 2
    assert client.get(still_queued.id).state is JobState.QUEUED


def test_cli_submit_shows_the_warning_and_what_it_waits_for(noop_cluster: Cluster) -> None:
    key = noop_cluster.http.post("/keys", json={"role": "client"}).json()["key"]
    env = {**noop_cluster.coordinator.env, "TASKPOST_SERVER_URL": noop_cluster.url, "TASKPOST_API_KEY": key}
    args = ["submit", "url_audio", "-p", "url=https://example.com/talk.mp3", "--wait", "--wait-timeout", "3"]
    done = subprocess.run(
        [sys.executable, "-m", "taskpost.cli", *args], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1, done.stderr
    [job] = noop_cluster.http.get("/jobs", params={"type": "url_audio"}).json()["jobs"]
    assert (
        "warning: no registered agent runs 'url_audio' yet; the job waits in the queue until one does "
        "(agents need: pip install 'taskpost[download]')"
    ) in done.stderr
    assert f"job {job['id']} is queued: waiting for an agent that runs 'url_audio'" in done.stderr
    assert f"error: job {job['id']} is still queued (wait_timed_out)" in done.stderr


@pytest.mark.media
def test_transcription_of_a_url_with_the_client(cluster: Cluster, tmp_path: Path) -> None:
    """The doc-transcribe seed's ``{"type": "transcription", "params": {"url": ...}}``; a web
    server on 127.0.0.1 stands in for the site."""
    pytest.importorskip("faster_whisper", reason="needs taskpost[stt]")
    jiwer = pytest.importorskip("jiwer", reason="needs jiwer (dev dependency)")
    from tests.media_fixtures import speech
    from tests.media_fixtures.media_server import serve_speech

    if missing := speech.missing_tools():
        pytest.skip(f"needs {', '.join(missing)} to generate test speech")
    cluster.start_agent("--task-type", "transcription", "--work-dir", str(tmp_path / "work"))
    cluster.wait_agents(1, timeout_s=60)
    key = cluster.http.post("/keys", json={"role": "client"}).json()["key"]
    with serve_speech(tmp_path / "site") as site, Client(cluster.url, key) as client:
        submitted = client.submit("transcription", {"url": site.url("speech.wav")}, priority="high")
        result = client.result(submitted.job.id, timeout=90)
        saved = client.download_outputs(submitted.job.id, tmp_path / "out")
    assert result["source"]["source_url"] == site.url("speech.wav")
    transcript = (tmp_path / "out" / "transcript.txt").read_text(encoding="utf-8")
    assert tmp_path / "out" / "transcript.txt" in saved
    assert jiwer.wer(speech.normalise(speech.ENGLISH_TEXT), speech.normalise(transcript)) < 0.2, transcript
