"""Test speech, synthesised with espeak-ng and converted with ffmpeg: no recordings in the repo.

espeak-ng's voice is robotic but clear: Whisper's tiny.en transcribes these sentences almost
word for word, which lets tests assert a word error rate instead of exact text.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

ENGLISH_TEXT = (
    "The weather was cold and windy this morning. "
    "We walked to the station and waited for the train. "
    "The train arrived a few minutes late. "
    "Everyone was happy to get home before dinner."
)
"""About twelve seconds of speech at espeak-ng's default speed."""

GERMAN_TEXT = (
    "Das Wetter war heute Morgen kalt und windig. "
    "Wir sind zum Bahnhof gegangen und haben auf den Zug gewartet."
)
"""For language detection: speak it with ``voice="de"`` at 175 words per minute."""

LONG_TEXT = (
    ENGLISH_TEXT,
    "Please send the report to the finance team by Friday. "
    "Bring a copy of the budget and your notes to the meeting.",
    "The garden behind the old house was full of roses. "
    "In the summer the children played there until it was dark.",
    "A good cup of coffee makes the morning much better. "
    "Some people prefer tea with milk and a little sugar.",
    "The library opens early on weekdays and closes late on Thursday. "
    "You can borrow up to ten books at a time.",
)
"""Paragraphs for longer recordings (benchmarks): about a minute in all."""

TOOLS = ("espeak-ng", "ffmpeg")


def missing_tools() -> list[str]:
    """The command-line tools this module needs that are not on PATH."""
    return [tool for tool in TOOLS if shutil.which(tool) is None]


def normalise(text: str) -> str:
    """Lower case, words only: what word error rates are computed on."""
    return " ".join(re.sub(r"[^a-z0-9']+", " ", text.lower()).split())


def _run(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True, timeout=120)


def speak(text: str, path: Path, *, voice: str = "en-us", words_per_minute: int = 150) -> Path:
    """Write ``text`` spoken by espeak-ng as a WAV file (22.05 kHz, 16-bit mono)."""
    _run("espeak-ng", "-v", voice, "-s", str(words_per_minute), "-w", str(path), text)
    return path


def to_mp3(wav: Path, path: Path) -> Path:
    """The WAV re-encoded as MP3."""
    _run("ffmpeg", "-loglevel", "error", "-y", "-i", str(wav), "-codec:a", "libmp3lame", str(path))
    return path


def to_mp4(wav: Path, path: Path) -> Path:
    """A video: a small black picture for as long as the speech, with the speech as AAC audio."""
    _run(
        "ffmpeg", "-loglevel", "error", "-y",
        "-f", "lavfi", "-i", "color=c=black:s=64x64:r=5",
        "-i", str(wav), "-shortest",
        "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac",
        str(path),
    )  # fmt: skip
    return path


def silent_video(path: Path, seconds: float = 2.0) -> Path:
    """An MP4 with a video stream and no audio stream."""
    _run(
        "ffmpeg", "-loglevel", "error", "-y",
        "-f", "lavfi", "-i", "color=c=black:s=64x64:r=5", "-t", str(seconds),
        "-c:v", "libx264", "-pix_fmt", "yuv420p",
        str(path),
    )  # fmt: skip
    return path


def long_speech(path: Path, paragraphs: tuple[str, ...] = LONG_TEXT) -> tuple[Path, str]:
    """One WAV of several paragraphs spoken in turn, and the text spoken."""
    text = " ".join(paragraphs)
    return speak(text, path), text


def duration_s(path: Path) -> float:
    """A media file's duration, as ffprobe reads it."""
    probe = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", str(path)],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return float(probe.stdout.strip())
