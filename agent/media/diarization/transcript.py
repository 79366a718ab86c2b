"""Speaker labels on transcript segments, and the transcript text as speaker turns."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from taskpost.agent.media.diarization.base import Diarizer

if TYPE_CHECKING:
    from taskpost.agent.media.diarization.base import FloatArray


def label_segments(
    diarizer: Diarizer,
    audio16k: FloatArray,
    segments: list[dict[str, Any]],
    *,
    num_speakers: int | None,
    progress: Callable[[float], None] | None = None,
) -> int:
    """Add ``"speaker"`` to each segment (``start``/``end`` in seconds); returns how many speakers."""
    spans = [(float(segment["start"]), float(segment["end"])) for segment in segments]
    labels = diarizer.label(audio16k, spans, num_speakers=num_speakers, progress=progress)
    if len(labels) != len(segments):
        raise ValueError(f"the diarizer gave {len(labels)} labels for {len(segments)} segments")
    for segment, label in zip(segments, labels, strict=True):
        segment["speaker"] = label
    return len(set(labels))


def cue_text(segment: dict[str, Any]) -> str:
    """A subtitle cue's text: ``[S1] text`` when the segment has a speaker."""
    speaker = segment.get("speaker")
    return f"[{speaker}] {segment['text']}" if speaker else str(segment["text"])


def speaker_turns(segments: list[dict[str, Any]]) -> str:
    """The transcript as turns, one paragraph per change of speaker: ``S1: text ...``."""
    turns: list[tuple[str, list[str]]] = []
    for segment in segments:
        if not segment["text"]:
            continue
        if not turns or turns[-1][0] != segment["speaker"]:
            turns.append((segment["speaker"], []))
        turns[-1][1].append(segment["text"])
    return "\n\n".join(f"{speaker}: {' '.join(texts)}" for speaker, texts in turns)
