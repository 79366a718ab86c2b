"""The README's first command: ``taskpost demo`` on the bundled samples."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from taskpost.launch import child_env, free_port

pytestmark = [pytest.mark.e2e, pytest.mark.media, pytest.mark.slow]


def test_demo_transcribes_and_ocrs_the_bundled_samples(tmp_path: Path) -> None:
    pytest.importorskip("faster_whisper")
    pytest.importorskip("rapidocr")
    work = tmp_path / "demo"
    command = [
        sys.executable,
        "-m",
        "taskpost.cli",
        "demo",
        "--work-dir",
        str(work),
        "--port",
        str(free_port()),
    ]
    done = subprocess.run(command, env=child_env({}), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    transcript = (work / "outputs" / "transcription" / "transcript.txt").read_text().lower()
    assert all(word in transcript for word in ("coordinator", "database", "agents", "media"))
    for name in ("transcript.srt", "transcript.vtt", "segments.json"):
        assert (work / "outputs" / "transcription" / name).stat().st_size > 0
    page = (work / "outputs" / "ocr" / "text.txt").read_text()
    assert "Nothing is lost when an agent dies." in page
    assert "Agents claim tasks under a lease" in page
