"""espeak-ng (the Debian package) as a speech engine: offline, fast, robotic but clear.

Each batch is one ``espeak-ng -w FILE`` run: ``--stdout`` writes a streaming WAV header whose size
field is 0x7fffffff, so a file is read back instead.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
import tempfile
import wave
from collections.abc import Sequence
from pathlib import Path

from taskpost.agent.handlers.base import HandlerError
from taskpost.agent.media.tts.engine import DEFAULT_RATE_WPM, bad_voice

BINARY = "espeak-ng"
DEFAULT_VOICE = "en-us"
SAMPLE_RATE = 22050
"""What espeak-ng's own voices produce (MBROLA voices, 16 kHz, are not offered)."""
TIMEOUT_S = 300


def espeak_binary() -> str:
    """The espeak-ng executable; a non-retryable error naming the Debian package when it is absent."""
    found = shutil.which(BINARY)
    if found is None:
        raise HandlerError(
            "espeak-ng is not installed on this agent: apt-get install espeak-ng",
            retryable=False,
            kind="missing_tool",
        )
    return found


@functools.cache
def espeak_voices() -> tuple[frozenset[str], frozenset[str]]:
    """Voice names espeak-ng knows (languages, voice names, voice files; lower case) and its variants."""
    binary = espeak_binary()
    voices: set[str] = set()
    for line in _listing(binary, "--voices")[1:]:
        fields = line.split()
        if len(fields) >= 5:
            voices.update(field.lower() for field in (fields[1], fields[3], fields[4]))
            voices.update(code.strip("()").lower() for code in fields[5::2])
    variants = {
        line.split()[4].removeprefix("!v/").lower() for line in _listing(binary, "--voices=variant")[1:]
    }
    return frozenset(voices), frozenset(variants)


def _listing(binary: str, option: str) -> list[str]:
    done = subprocess.run([binary, option], capture_output=True, text=True, timeout=60, check=False)
    return [line for line in done.stdout.splitlines() if line.strip()]


def check_voice(voice: str) -> str:
    """``voice`` if espeak-ng has it (``en-us``, ``de``, ``en-us+f3``); else ``bad_params``."""
    base, _, variant = voice.partition("+")
    voices, variants = espeak_voices()
    if base.lower() not in voices:
        raise bad_voice(f"espeak-ng has no voice {base!r}: see `espeak-ng --voices` (e.g. en-us, en-gb, de)")
    if variant and variant.lower() not in variants:
        raise bad_voice(f"espeak-ng has no voice variant {variant!r}: see `espeak-ng --voices=variant`")
    return voice


class EspeakEngine:
    """Speech from the espeak-ng command, written to scratch files under ``scratch_dir``."""

    name = "espeak"
    sample_rate = SAMPLE_RATE

    def __init__(self, scratch_dir: Path, voice: str | None = None, rate_wpm: int = DEFAULT_RATE_WPM) -> None:
        self.binary = espeak_binary()
        self.voice = check_voice(voice or DEFAULT_VOICE)
        self.rate_wpm = rate_wpm
        self.scratch_dir = scratch_dir

    def speak(self, sentences: Sequence[str]) -> bytes:
        self.scratch_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=self.scratch_dir) as scratch:
            text_file = Path(scratch) / "batch.txt"
            wav_file = Path(scratch) / "batch.wav"
            text_file.write_text("\n".join(sentences) + "\n", encoding="utf-8")
            command = [self.binary, "-v", self.voice, "-s", str(self.rate_wpm), "-b", "1"]
            command += ["-f", str(text_file), "-w", str(wav_file)]
            done = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT_S, check=False)
            if done.returncode != 0 or not wav_file.is_file():
                raise HandlerError(
                    f"espeak-ng failed (exit {done.returncode}): {done.stderr.strip()[:300]}",
                    retryable=False,
                    kind="tts_failed",
                )
            with wave.open(str(wav_file), "rb") as wav:
                if (wav.getframerate(), wav.getsampwidth(), wav.getnchannels()) != (SAMPLE_RATE, 2, 1):
                    raise HandlerError(
                        f"espeak-ng voice {self.voice!r} does not speak 16-bit {SAMPLE_RATE} Hz mono",
                        retryable=False,
                        kind="bad_params",
                    )
                return wav.readframes(wav.getnframes())
