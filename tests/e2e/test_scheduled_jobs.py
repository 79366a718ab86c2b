"""Scheduled jobs and the result cache through a real coordinator and real agent processes."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Cluster

SPEECH = Path(__file__).parents[2] / "taskpost" / "samples" / "speech.wav"
REAPER_INTERVAL_S = 60
"""Far longer than any wait here: only the coordinator's due-time timer can queue a job in time."""


@pytest.fixture
def slow_reaper_cluster(tmp_path: Path) -> Iterator[Cluster]:
    cluster = Cluster(tmp_path)
    cluster.coordinator.env["TASKPOST_REAPER_INTERVAL_S"] = str(REAPER_INTERVAL_S)
    cluster.start_coordinator()
    try:
        yield cluster
    finally:
        cluster.stop()


def _at(value: str) -> float:
    return datetime.fromisoformat(value).timestamp()


def test_an_agent_runs_a_delayed_job_once_it_is_due(slow_reaper_cluster: Cluster) -> None:
    cluster = slow_reaper_cluster
    cluster.start_agent()
    cluster.wait_agents(1)
    job = cluster.submit(params={"when": "later"}, delay_s=2)
    assert job["state"] == "scheduled"
    assert cluster.job(job["id"])["state"] == "scheduled"

    done = cluster.wait_job(job["id"], {"completed", "dead"}, timeout_s=REAPER_INTERVAL_S / 3)
    assert done["state"] == "completed", done
    assert _at(done["started_at"]) >= _at(done["created_at"]) + 2
    assert _at(done["started_at"]) < _at(done["created_at"]) + 2 + 10  # not at the next reaper pass
    assert done["result"]["params"] == {"when": "later"}


def _upload(cluster: Cluster, data: bytes) -> str:
    response = cluster.http.post("/uploads", params={"name": "speech.wav"}, content=data)
    assert response.status_code == 201, response.text
    upload_id: str = response.json()["upload_id"]
    return upload_id


def _submit_twice_from_the_cache(
    cluster: Cluster, job_type: str, params: dict[str, Any], job_s: float
) -> None:
    """Upload the same audio twice, submit each with ``cache``: the second is the first's answer."""
    audio = SPEECH.read_bytes()
    spec = {"type": job_type, "params": params, "cache": True}
    first = cluster.submit(**spec, inputs=[{"name": "speech.wav", "upload_id": _upload(cluster, audio)}])
    done = cluster.wait_job(first["id"], {"completed", "dead"}, timeout_s=job_s)
    assert done["state"] == "completed", done
    assert done["outputs"]

    second = cluster.submit(**spec, inputs=[{"name": "speech.wav", "upload_id": _upload(cluster, audio)}])
    assert second["state"] == "completed" and second["cached_from"] == first["id"]
    assert second["attempts"] == 0 and second["started_at"] is None and second["worker_id"] is None
    assert second["result"] == done["result"] and second["outputs"] == done["outputs"]
    assert [event["kind"] for event in cluster.events(second["id"])] == ["cached"]
    for entry in done["outputs"]:
        name = entry["name"]
        copy = cluster.http.get(f"/jobs/{second['id']}/outputs/{name}")
        assert (
            copy.status_code == 200
            and copy.content == cluster.http.get(f"/jobs/{first['id']}/outputs/{name}").content
        )
    [agent] = cluster.agents
    assert first["id"] in agent.output() and second["id"] not in agent.output()  # never claimed


def test_the_same_upload_with_cache_completes_without_a_claim(cluster: Cluster) -> None:
    cluster.start_agent()
    cluster.wait_agents(1)
    params = {"echo_inputs": True, "outputs": {"transcript.txt": "pretend words"}}
    _submit_twice_from_the_cache(cluster, "noop", params, job_s=30)


@pytest.mark.media
def test_the_same_audio_transcribed_with_cache_completes_without_a_claim(cluster: Cluster) -> None:
    pytest.importorskip("faster_whisper", reason="needs taskpost[stt]")
    cluster.start_agent("--task-type", "transcription", "--work-dir", str(cluster.tmp_path / "work"))
    cluster.wait_agents(1, timeout_s=60)
    _submit_twice_from_the_cache(cluster, "transcription", {"language": "en"}, job_s=90)
