"""``transcription`` with a ``url`` through the whole system: a coordinator, an agent process, and a
local web server on 127.0.0.1 standing in for the site. The seeds submit exactly this request."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import Cluster
from tests.media_fixtures import speech
from tests.media_fixtures.media_server import MediaServer, audio_page, serve_speech

pytestmark = [pytest.mark.e2e, pytest.mark.media]

pytest.importorskip("faster_whisper", reason="needs taskpost[stt]")
jiwer = pytest.importorskip("jiwer", reason="needs jiwer (dev dependency)")

# Starting an agent sets up transcription, which loads the packaged Whisper models.
AGENT_START_S = 60
JOB_S = 90
FINAL = {"completed", "dead", "failed", "cancelled"}


@pytest.fixture
def server(tmp_path: Path) -> Iterator[MediaServer]:
    if missing := speech.missing_tools():
        pytest.skip(f"needs {', '.join(missing)} to generate test speech")
    with serve_speech(tmp_path / "site") as media_server:
        yield media_server


@pytest.fixture
def cluster_with_agent(cluster: Cluster) -> Cluster:
    cluster.start_agent("--task-type", "transcription", "--work-dir", str(cluster.tmp_path / "work"))
    cluster.wait_agents(1, timeout_s=AGENT_START_S)
    return cluster


def transcript(cluster: Cluster, job_id: str) -> str:
    response = cluster.http.get(f"/jobs/{job_id}/outputs/transcript.txt")
    assert response.status_code == 200, response.text
    return speech.normalise(response.text)


def test_direct_media_link_is_transcribed(cluster_with_agent: Cluster, server: MediaServer) -> None:
    cluster = cluster_with_agent
    url = server.url("speech.wav")
    job = cluster.submit(type="transcription", params={"url": url})
    done = cluster.wait_job(job["id"], FINAL, timeout_s=JOB_S)
    assert done["state"] == "completed", done
    text = transcript(cluster, job["id"])
    assert jiwer.wer(speech.normalise(speech.ENGLISH_TEXT), text) < 0.2, text
    assert done["result"]["source"]["source_url"] == url
    assert "extractor" not in done["result"]["source"]  # plain HTTP, not yt-dlp


def test_page_url_goes_through_yt_dlp_and_refusals_die_at_once(
    cluster_with_agent: Cluster, server: MediaServer
) -> None:
    pytest.importorskip("yt_dlp", reason="needs taskpost[download]")
    cluster = cluster_with_agent
    page = server.add_page("weather.html", audio_page("/speech.mp3", title="Weather report"))
    job = cluster.submit(type="transcription", params={"url": page, "language": "en"})
    refused = {"not_found": server.url("gone.mp3"), "bad_url": "htp:/nowhere"}
    dying = {
        kind: cluster.submit(type="transcription", params={"url": url}, max_attempts=3)
        for kind, url in refused.items()
    }

    done = cluster.wait_job(job["id"], FINAL, timeout_s=JOB_S)
    assert done["state"] == "completed", done
    assert done["result"]["source"]["title"].startswith("Weather report")
    text = transcript(cluster, job["id"])
    assert jiwer.wer(speech.normalise(speech.ENGLISH_TEXT), text) < 0.2, text
    for kind, submitted in dying.items():
        dead = cluster.wait_job(submitted["id"], FINAL, timeout_s=JOB_S)
        assert dead["state"] == "dead" and dead["attempts"] == 1, dead
        assert dead["error"]["kind"] == kind and dead["error"]["retryable"] is False, dead
