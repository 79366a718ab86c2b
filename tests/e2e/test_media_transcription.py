"""Transcription through the whole system: a real coordinator, a real agent process, real models."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.e2e.conftest import Cluster
from tests.media_fixtures import speech

pytestmark = [pytest.mark.e2e, pytest.mark.media]

pytest.importorskip("faster_whisper", reason="needs taskpost[stt]")
jiwer = pytest.importorskip("jiwer", reason="needs jiwer (dev dependency)")

# Starting an agent loads both packaged models (and joins the parts of "base" the first time).
AGENT_START_S = 60
JOB_S = 90


@pytest.fixture
def speech_wav(tmp_path: Path) -> Path:
    if missing := speech.missing_tools():
        pytest.skip(f"needs {', '.join(missing)} to generate test speech")
    folder = tmp_path / "media"
    folder.mkdir()
    return speech.speak(speech.ENGLISH_TEXT, folder / "speech.wav")


def _srt_text(srt: str) -> str:
    lines = [line for line in srt.splitlines() if line and not line.isdigit() and "-->" not in line]
    return " ".join(lines)


def _assert_english_srt(srt: str) -> None:
    assert re.match(r"1\n00:00:\d\d,\d{3} --> 00:00:\d\d,\d{3}\n\S", srt), srt
    text = _srt_text(srt)
    assert jiwer.wer(speech.normalise(speech.ENGLISH_TEXT), speech.normalise(text)) < 0.15, text


def test_uploaded_wav_is_transcribed_by_an_agent(cluster: Cluster, speech_wav: Path) -> None:
    cluster.start_agent("--task-type", "transcription", "--work-dir", str(cluster.tmp_path / "work"))
    cluster.wait_agents(1, timeout_s=AGENT_START_S)
    upload = cluster.http.post("/uploads", params={"name": "speech.wav"}, content=speech_wav.read_bytes())
    assert upload.status_code == 201, upload.text
    job = cluster.submit(
        type="transcription",
        params={"language": "en"},
        inputs=[{"name": "speech.wav", "upload_id": upload.json()["upload_id"]}],
    )
    done = cluster.wait_job(job["id"], {"completed", "dead", "failed"}, timeout_s=JOB_S)
    assert done["state"] == "completed", done
    result = done["result"]
    assert result["model"] == "tiny.en" and result["language"] == "en"
    assert result["duration_s"] > 5 and result["real_time_factor"] > 0

    srt = cluster.http.get(f"/jobs/{job['id']}/outputs/transcript.srt")
    assert srt.status_code == 200, srt.text
    _assert_english_srt(srt.text)
    vtt = cluster.http.get(f"/jobs/{job['id']}/outputs/transcript.vtt")
    assert vtt.text.startswith("WEBVTT\n\n")


def test_local_file_is_transcribed_and_bad_input_dies(cluster: Cluster, speech_wav: Path) -> None:
    root = speech_wav.parent
    (root / "notes.wav").write_text("not audio at all\n" * 50)
    cluster.start_agent("--task-type", "transcription", "--files-root", str(root))
    cluster.wait_agents(1, timeout_s=AGENT_START_S)
    label = f"files-root:{root}"

    good = cluster.submit(
        type="transcription", params={"local_path": str(speech_wav), "language": "en"}, labels=[label]
    )
    bad = cluster.submit(
        type="transcription", params={"local_path": str(root / "notes.wav")}, labels=[label], max_attempts=3
    )
    done = cluster.wait_job(good["id"], {"completed", "dead", "failed"}, timeout_s=JOB_S)
    assert done["state"] == "completed", done
    _assert_english_srt(cluster.http.get(f"/jobs/{good['id']}/outputs/transcript.srt").text)

    dead = cluster.wait_job(bad["id"], {"completed", "dead"}, timeout_s=JOB_S)
    assert dead["state"] == "dead" and dead["attempts"] == 1, dead
    assert dead["error"]["kind"] == "bad_input" and dead["error"]["retryable"] is False
    assert "cannot decode notes.wav" in dead["error"]["message"]
