"""The README's first command: ``taskpost demo`` on the bundled samples."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from taskpost.launch import child_env, free_port
from tests.media_fixtures import speech

pytestmark = [pytest.mark.e2e, pytest.mark.media, pytest.mark.slow]

# The sample is short and full of product names ("Taskpost", "Redis"): even a good transcript
# misses a few of its 20 words ("Task post", "riddles", "co-ordinator"). A broken pipeline or a
# wrong model gives a rate near 1.
MAX_WORD_ERROR_RATE = 0.5
MAX_CHARACTER_ERROR_RATE = 0.05


def _words(text: str) -> str:
    """Lower-case words, with spellings that only differ by a hyphen made equal."""
    return speech.normalise(text.replace("-", ""))


def _characters(text: str) -> str:
    return " ".join(text.split())


@pytest.mark.timeout(900)  # the first start of an agent on a fresh machine unpacks the models
def test_demo_transcribes_and_ocrs_the_bundled_samples(tmp_path: Path) -> None:
    pytest.importorskip("faster_whisper")
    pytest.importorskip("rapidocr")
    jiwer = pytest.importorskip("jiwer")
    # The texts the samples were made from (the script needs Pillow, which the OCR extra brings).
    from scripts.make_samples import PAGE_LINES, SPEECH

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
    done = subprocess.run(command, env=child_env({}), capture_output=True, text=True, timeout=840)
    assert done.returncode == 0, done.stdout + done.stderr
    transcript = (work / "outputs" / "transcription" / "transcript.txt").read_text()
    assert jiwer.wer(_words(SPEECH), _words(transcript)) < MAX_WORD_ERROR_RATE, transcript
    for name in ("transcript.srt", "transcript.vtt", "segments.json"):
        assert (work / "outputs" / "transcription" / name).stat().st_size > 0
    page = (work / "outputs" / "ocr" / "text.txt").read_text()
    reference = _characters(" ".join(PAGE_LINES))
    assert jiwer.cer(reference, _characters(page)) < MAX_CHARACTER_ERROR_RATE, page
