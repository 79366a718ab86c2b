"""URL audio through the whole system: a coordinator, an agent process running yt-dlp, and a local
web server standing in for the sites it downloads from."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Cluster
from tests.media_fixtures import speech
from tests.media_fixtures.media_server import MediaServer, audio_page, plain_page, serve_speech

pytestmark = [pytest.mark.e2e, pytest.mark.media]

pytest.importorskip("yt_dlp", reason="needs taskpost[download]")

# Starting an agent sets up transcription too, which loads the packaged Whisper models.
AGENT_START_S = 60
JOB_S = 90
FINAL = {"completed", "dead", "failed", "cancelled"}


@pytest.fixture
def server(tmp_path: Path) -> Iterator[MediaServer]:
    if missing := speech.missing_tools():
        pytest.skip(f"needs {', '.join(missing)} to generate test speech")
    with serve_speech(tmp_path / "site") as media_server:
        yield media_server


def start_agent(cluster: Cluster) -> None:
    cluster.start_agent("--task-type", "url_audio", "--work-dir", str(cluster.tmp_path / "work"))
    cluster.wait_agents(1, timeout_s=AGENT_START_S)


def output(cluster: Cluster, job: dict[str, Any], name: str) -> bytes:
    response = cluster.http.get(f"/jobs/{job['id']}/outputs/{name}")
    assert response.status_code == 200, response.text
    return response.content


def test_page_audio_is_downloaded_and_transcribed_by_an_agent(cluster: Cluster, server: MediaServer) -> None:
    pytest.importorskip("faster_whisper", reason="needs taskpost[stt]")
    pytest.importorskip(
        "taskpost.agent.handlers.transcription", reason="transcription handler not written yet"
    )
    jiwer = pytest.importorskip("jiwer", reason="needs jiwer (dev dependency)")
    start_agent(cluster)
    url = server.add_page("weather.html", audio_page("/speech.mp3", title="Weather report"))
    job = cluster.submit(type="url_audio", params={"url": url, "language": "en"})
    done = cluster.wait_job(job["id"], FINAL, timeout_s=JOB_S)
    assert done["state"] == "completed", done

    meta = done["result"]["metadata"]
    assert meta["source_url"] == url and meta["title"].startswith("Weather report")
    assert meta["duration_s"] == pytest.approx(speech.duration_s(server.root / "speech.mp3"), abs=0.1)
    transcript = speech.normalise(output(cluster, done, "transcript.txt").decode())
    assert jiwer.wer(speech.normalise(speech.ENGLISH_TEXT), transcript) < 0.15, transcript
    assert speech.normalise(done["result"]["transcription"]["text"]) == transcript
    names = {item["name"] for item in done["outputs"]}
    assert {"metadata.json", "transcript.txt", "transcript.srt"} <= names
    assert not any(name.startswith("audio.") for name in names)


def test_download_only_keeps_the_audio_and_refusals_die_at_once(
    cluster: Cluster, server: MediaServer
) -> None:
    start_agent(cluster)
    audio = cluster.submit(type="url_audio", params={"url": server.url("speech.mp3"), "transcribe": False})
    refused = {
        "not_found": server.url("gone.mp3"),
        "unsupported_url": server.add_page("about.html", plain_page()),
        "bad_url": "htp:/nowhere",
    }
    jobs = {
        kind: cluster.submit(type="url_audio", params={"url": url, "transcribe": False}, max_attempts=3)
        for kind, url in refused.items()
    }

    done = cluster.wait_job(audio["id"], FINAL, timeout_s=JOB_S)
    assert done["state"] == "completed", done
    assert done["result"]["audio"] == "audio.mp3"
    assert done["result"]["metadata"]["extractor"] == "Generic"
    assert output(cluster, done, "audio.mp3") == (server.root / "speech.mp3").read_bytes()
    assert b'"source_url"' in output(cluster, done, "metadata.json")

    for kind, job in jobs.items():
        dead = cluster.wait_job(job["id"], FINAL, timeout_s=JOB_S)
        assert dead["state"] == "dead" and dead["attempts"] == 1, dead
        assert dead["error"]["kind"] == kind and dead["error"]["retryable"] is False, dead
