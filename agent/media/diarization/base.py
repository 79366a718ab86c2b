"""The diarizer contract and the speaker names it hands out."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import numpy as np

    FloatArray = np.ndarray[Any, np.dtype[np.float32]]

SAMPLE_RATE = 16_000
"""The rate of the audio a diarizer gets (what Whisper decodes to)."""

Span = tuple[float, float]
"""A segment's start and end, in seconds."""


class Diarizer(Protocol):
    """Labels who speaks in each segment of a recording."""

    def label(
        self,
        audio16k: FloatArray,
        spans: Sequence[Span],
        *,
        num_speakers: int | None = None,
        progress: Callable[[float], None] | None = None,
    ) -> list[str]:
        """One label per span: ``S1``, ``S2``, ... in order of first appearance.

        ``audio16k`` is the recording as 16 kHz mono float32 samples. ``num_speakers`` fixes how
        many voices there are, else they are estimated. ``progress`` gets the share done (0..1)
        and may raise to stop the work.
        """
        ...


def speaker_names(groups: Sequence[int]) -> list[str]:
    """``S1`` for the first group met, ``S2`` for the next new one, and so on."""
    order: dict[int, str] = {}
    for group in groups:
        order.setdefault(group, f"S{len(order) + 1}")
    return [order[group] for group in groups]
