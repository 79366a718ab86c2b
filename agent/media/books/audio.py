"""The audiobook's files: chapter WAVs encoded to MP3 or Opus, and joined into one file with chapter marks.

PyAV writes chapters only when ``set_chapters`` is called before the first packet is muxed, so
the chapter times come from the WAVs' sample counts, known before encoding starts. MP3 gets ID3
CHAP frames that way. Ogg (Opus) stores chapters as ``CHAPTERnnn`` comments, and FFmpeg 8's Ogg
muxer rounds their seconds to the nearest instead of down (12.937 s is written 00:00:13.937), so
those comments are written here instead.
"""

from __future__ import annotations

import wave
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal

from taskpost.agent.media.extras import require

AudioFormat = Literal["mp3", "opus"]
CODECS: dict[str, tuple[str, int | None]] = {"mp3": ("libmp3lame", None), "opus": ("libopus", 48000)}
"""Codec and the rate it is fed (None: the WAV's own); libopus takes 8, 12, 16, 24 or 48 kHz."""
CODEC_OPTIONS = {"mp3": {"compression_level": "7"}, "opus": {}}
"""LAME quality 7 (0 best, 9 fastest): half the CPU time of PyAV's default, measured here."""
CANCEL_CHECK_FRAMES = 200
"""About 20 s of speech (2048-sample frames at 22.05 kHz): well under a second of encoding."""
DEFAULT_BITRATE_KBPS = {"mp3": 64, "opus": 32}
"""Mono speech: plenty for either codec."""


@dataclass(frozen=True)
class ChapterAudio:
    """A spoken chapter: its WAV file (16-bit mono PCM) and its length in samples."""

    title: str
    wav: Path
    samples: int
    sample_rate: int

    @property
    def duration_s(self) -> float:
        return self.samples / self.sample_rate


class WavWriter:
    """A 16-bit mono WAV file written batch by batch; counts the samples it holds."""

    def __init__(self, path: Path, sample_rate: int) -> None:
        self.path = path
        self.sample_rate = sample_rate
        self.samples = 0
        self._wav = wave.open(str(path), "wb")  # noqa: SIM115  (closed in close())
        self._wav.setnchannels(1)
        self._wav.setsampwidth(2)
        self._wav.setframerate(sample_rate)

    def write(self, pcm: bytes) -> None:
        self._wav.writeframes(pcm)
        self.samples += len(pcm) // 2

    def close(self) -> None:
        self._wav.close()


def encode(
    chapter: ChapterAudio,
    out: Path,
    fmt: AudioFormat,
    bitrate_kbps: int | None,
    *,
    cancelled: Callable[[], bool] = lambda: False,
) -> bool:
    """One chapter's WAV as an MP3 or Opus file titled with the chapter's title; False if cancelled."""
    return _write([chapter], out, fmt, bitrate_kbps, chapters=False, title=chapter.title, cancelled=cancelled)


def join(
    chapters: Sequence[ChapterAudio],
    out: Path,
    fmt: AudioFormat,
    bitrate_kbps: int | None,
    *,
    title: str | None,
    cancelled: Callable[[], bool] = lambda: False,
) -> bool:
    """All chapters in one file with a chapter mark at each; False when cancelled part way."""
    return _write(chapters, out, fmt, bitrate_kbps, chapters=True, title=title, cancelled=cancelled)


def chapter_marks(chapters: Sequence[ChapterAudio]) -> list[dict[str, Any]]:
    """PyAV chapter entries: start and end in samples of the (common) sample rate."""
    marks = []
    start = 0
    for index, chapter in enumerate(chapters, start=1):
        end = start + chapter.samples
        marks.append(
            {
                "id": index,
                "start": start,
                "end": end,
                "time_base": Fraction(1, chapter.sample_rate),
                "metadata": {"title": chapter.title},
            }
        )
        start = end
    return marks


def ogg_chapter_comments(chapters: Sequence[ChapterAudio]) -> dict[str, str]:
    """Chapter marks as Ogg comments: ``CHAPTER001=00:01:02.345`` and ``CHAPTER001NAME=title``."""
    comments = {}
    start = 0
    for index, chapter in enumerate(chapters):
        ms = start * 1000 // chapter.sample_rate
        seconds, ms = divmod(ms, 1000)
        minutes, seconds = divmod(seconds, 60)
        hours, minutes = divmod(minutes, 60)
        comments[f"CHAPTER{index:03d}"] = f"{hours:02d}:{minutes:02d}:{seconds:02d}.{ms:03d}"
        comments[f"CHAPTER{index:03d}NAME"] = chapter.title
        start += chapter.samples
    return comments


def _write(
    sources: Sequence[ChapterAudio],
    out: Path,
    fmt: AudioFormat,
    bitrate_kbps: int | None,
    *,
    chapters: bool,
    title: str | None,
    cancelled: Callable[[], bool] = lambda: False,
) -> bool:
    av = require("av", "audiobook")
    codec, codec_rate = CODECS[fmt]
    rate = codec_rate or sources[0].sample_rate
    with av.open(str(out), "w", format="mp3" if fmt == "mp3" else "ogg") as container:
        if title:
            container.metadata["title"] = title
        stream = container.add_stream(codec, rate=rate, options=CODEC_OPTIONS[fmt])
        stream.layout = "mono"
        stream.bit_rate = (bitrate_kbps or DEFAULT_BITRATE_KBPS[fmt]) * 1000
        if chapters and fmt == "opus":
            stream.metadata.update(ogg_chapter_comments(sources))
        elif chapters:
            container.set_chapters(chapter_marks(sources))  # must precede the first mux
        resampler = av.AudioResampler(format=stream.format.name, layout="mono", rate=rate)
        for source in sources:
            with av.open(str(source.wav)) as wav:
                for number, frame in enumerate(wav.decode(audio=0)):
                    if number % CANCEL_CHECK_FRAMES == 0 and cancelled():
                        return False
                    frame.pts = None  # each WAV starts at 0: let the encoder number the samples
                    for resampled in resampler.resample(frame):
                        resampled.pts = None
                        container.mux(stream.encode(resampled))
        for resampled in resampler.resample(None):
            resampled.pts = None
            container.mux(stream.encode(resampled))
        container.mux(stream.encode(None))
    return True
