"""The text-to-speech engine contract of the audiobook task.

An engine turns a few sentences into 16-bit mono PCM at its ``sample_rate``. The task calls it
once per batch of sentences, so that progress and cancellation happen between batches, and
appends the batches into one WAV file per chapter.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from taskpost.agent.handlers.base import HandlerError

DEFAULT_RATE_WPM = 160


@runtime_checkable
class TtsEngine(Protocol):
    """A voice that reads sentences aloud."""

    name: str
    """``espeak`` or ``piper``: what the result reports."""
    voice: str
    sample_rate: int

    def speak(self, sentences: Sequence[str]) -> bytes:
        """The sentences spoken in order, as signed 16-bit little-endian mono PCM."""


def bad_voice(message: str) -> HandlerError:
    return HandlerError(message, retryable=False, kind="bad_params")
