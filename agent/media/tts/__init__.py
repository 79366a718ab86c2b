"""Text-to-speech engines for the audiobook task: espeak-ng (the default) and Piper (``taskpost[piper]``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from taskpost.agent.media.tts.engine import DEFAULT_RATE_WPM, TtsEngine

__all__ = ["DEFAULT_RATE_WPM", "EngineName", "TtsEngine", "make_engine"]

EngineName = Literal["espeak", "piper"]


def make_engine(
    name: EngineName, *, voice: str | None, rate_wpm: int = DEFAULT_RATE_WPM, scratch_dir: Path
) -> TtsEngine:
    """The named engine with ``voice`` (checked: ``bad_params`` when unknown) at ``rate_wpm``."""
    if name == "piper":
        from taskpost.agent.media.tts.piper import PiperEngine

        return PiperEngine(voice, rate_wpm)
    from taskpost.agent.media.tts.espeak import EspeakEngine

    return EspeakEngine(scratch_dir, voice, rate_wpm)
