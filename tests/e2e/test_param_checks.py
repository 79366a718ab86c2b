"""Parameters checked at submit, through a real coordinator and a real agent process: the agent
declares its handlers' schemas when it registers, and a typo is a 422 instead of a job that
waits in the queue and fails on the agent minutes later."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import Cluster

pytestmark = [pytest.mark.e2e, pytest.mark.media]

pytest.importorskip("faster_whisper", reason="needs taskpost[stt]")

# Starting an agent sets up transcription, which loads the packaged Whisper models.
AGENT_START_S = 60


@pytest.fixture
def cluster_with_agent(cluster: Cluster) -> Cluster:
    work = str(cluster.tmp_path / "work")
    cluster.start_agent("--task-type", "transcription", "--task-type", "noop", "--work-dir", work)
    cluster.wait_agents(1, timeout_s=AGENT_START_S)
    return cluster


def test_a_typo_in_params_is_refused_at_submit(cluster_with_agent: Cluster) -> None:
    cluster = cluster_with_agent
    response = cluster.http.post("/jobs", json={"type": "transcription", "params": {"beam_sise": 3}})
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["details"]["field"] == "params.beam_sise"
    assert "unknown parameter" in error["message"] and "did you mean beam_size?" in error["message"]
    out_of_range = cluster.http.post("/jobs", json={"type": "transcription", "params": {"beam_size": 99}})
    assert out_of_range.status_code == 422, out_of_range.text
    assert out_of_range.json()["error"]["message"].startswith("params.beam_size: must be between 1 and 32")
    assert cluster.http.get("/jobs").json()["jobs"] == []


def test_noop_echoes_further_fields_and_types_lists_what_the_agent_declared(
    cluster_with_agent: Cluster,
) -> None:
    cluster = cluster_with_agent
    params = {"sleep_s": 0, "anything": {"nested": [1, 2]}}
    job = cluster.submit(type="noop", params=params)
    done = cluster.wait_job(job["id"], {"completed", "dead"})
    assert done["state"] == "completed", done
    assert done["result"]["params"] == params
    types = {entry["name"]: entry for entry in cluster.http.get("/types").json()["types"]}
    transcription = types["transcription"]
    assert (transcription["agents"], transcription["online"]) == (1, True)
    assert transcription["params_schema"]["additionalProperties"] is False
    assert {"beam_size", "local_path", "url"} <= set(transcription["params_schema"]["properties"])
    assert types["noop"]["params_schema"]["additionalProperties"] is True
    assert transcription["version"] == types["noop"]["version"]  # taskpost's version by default
