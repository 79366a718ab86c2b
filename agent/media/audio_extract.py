"""The audio track of a media file, written as WAV, FLAC or MP3 with PyAV.

``extract_audio`` decodes the first audio stream (video packets are demuxed but never decoded),
converts it to the wanted rate and channel layout, cuts it to ``[start_s, end_s)`` to the
sample, and encodes it. A cut starts with a seek to the keyframe before ``start_s``, so a range
late in a long file does not decode everything before it.

Failures are ``HandlerError``s that are never retried: ``bad_input`` (not media),
``no_audio`` (no audio stream, or nothing decodable in it) and ``bad_params`` (a range that starts
past the end of the media, a rate the format cannot take).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from taskpost.agent.handlers.base import HandlerError
from taskpost.agent.workdir import PRIVATE_FILE_MODE

if TYPE_CHECKING:
    import av
    import numpy as np
    from av.audio.frame import AudioFrame
    from av.audio.stream import AudioStream

AudioFormat = Literal["wav", "flac", "mp3"]
CODECS: dict[str, str] = {"wav": "pcm_s16le", "flac": "flac", "mp3": "libmp3lame"}
"""The encoder of each output format; the container is named by the format itself."""
MP3_MAX_CHANNELS = 2
CANCEL_EVERY = 64
"""Decoded frames between two cancellation checks (about 1.5 s of 44.1 kHz AAC)."""
PROGRESS_EVERY_S = 0.5


@dataclass(frozen=True)
class StreamInfo:
    """What an audio stream holds."""

    codec: str
    sample_rate: int
    channels: int
    layout: str
    bit_rate: int | None


@dataclass(frozen=True)
class Extracted:
    """An extracted audio file and what was read and written."""

    path: Path
    format: str
    duration_s: float | None
    """The source's duration, when its container says (else None)."""
    output_duration_s: float
    source: StreamInfo
    output: StreamInfo

    def summary(self) -> dict[str, Any]:
        """The JSON a job result carries."""
        return {
            "format": self.format,
            "duration_s": None if self.duration_s is None else round(self.duration_s, 3),
            "output_duration_s": round(self.output_duration_s, 3),
            "stream": asdict(self.source),
            "output": asdict(self.output),
        }


@dataclass(frozen=True)
class Cut:
    """Which part of the audio to keep and how to write it."""

    format: AudioFormat = "wav"
    start_s: float | None = None
    end_s: float | None = None
    sample_rate: int | None = None
    mono: bool = False


def _bad_params(message: str) -> HandlerError:
    return HandlerError(message, retryable=False, kind="bad_params")


def _stream_info(stream: AudioStream) -> StreamInfo:
    context = stream.codec_context
    return StreamInfo(
        codec=context.name,
        sample_rate=int(context.sample_rate),
        channels=int(context.layout.nb_channels),
        layout=context.layout.name,
        bit_rate=int(context.bit_rate) if context.bit_rate else None,
    )


def _duration_s(container: av.container.InputContainer, stream: AudioStream) -> float | None:
    if container.duration:
        return float(container.duration) / 1_000_000
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    return None


def _target(cut: Cut, source: StreamInfo) -> tuple[int, str]:
    """The output's sample rate and channel layout."""
    rate = cut.sample_rate or source.sample_rate
    if cut.format == "mp3":
        import av

        rates = av.codec.Codec(CODECS["mp3"], "w").audio_rates or ()
        if cut.sample_rate is None and rate not in rates:
            rate = max(r for r in rates if r <= max(rate, min(rates)))
        if rate not in rates:
            allowed = ", ".join(str(r) for r in sorted(rates))
            raise _bad_params(f"mp3 cannot take a sample rate of {rate} Hz (it takes {allowed})")
    if cut.mono or source.channels == 1:
        return rate, "mono"
    if cut.format == "mp3" and source.channels > MP3_MAX_CHANNELS:
        return rate, "stereo"
    return rate, source.layout


def _check_range(cut: Cut, duration_s: float | None) -> None:
    if cut.start_s is not None and cut.end_s is not None and cut.end_s <= cut.start_s:
        raise _bad_params(f"end_s ({cut.end_s}) must be after start_s ({cut.start_s})")
    if duration_s is not None and cut.start_s is not None and cut.start_s >= duration_s:
        raise _bad_params(f"start_s ({cut.start_s} s) is past the end of the media ({duration_s:.3f} s)")


def _open(path: Path) -> av.container.InputContainer:
    import av

    try:
        return av.open(str(path), metadata_errors="ignore")
    except av.error.FFmpegError as exc:
        raise HandlerError(
            f"cannot read {path.name} as audio or video: {exc}", retryable=False, kind="bad_input"
        ) from exc


class _Window:
    """Keeps the samples of ``[start_s, end_s)`` from a run of planar float frames that begins at
    ``origin_s``, counting position by samples (the resampler's output carries no usable times)."""

    def __init__(self, cut: Cut, rate: int, origin_s: float) -> None:
        self.rate = rate
        self.position = round(origin_s * rate)
        self.first = None if cut.start_s is None else round(cut.start_s * rate)
        self.last = None if cut.end_s is None else round(cut.end_s * rate)
        self.kept = 0

    @property
    def done(self) -> bool:
        return self.last is not None and self.position >= self.last

    def take(self, samples: np.ndarray[Any, Any]) -> np.ndarray[Any, Any] | None:
        begin, count = self.position, samples.shape[1]
        self.position += count
        low = 0 if self.first is None else max(0, self.first - begin)
        high = count if self.last is None else min(count, self.last - begin)
        if high <= low:
            return None
        self.kept += high - low
        return samples[:, low:high]


def _decoded(
    container: av.container.InputContainer, stream: AudioStream, file_name: str
) -> Iterator[AudioFrame]:
    import av

    try:
        yield from container.decode(stream)
    except av.error.FFmpegError as exc:
        raise HandlerError(
            f"cannot decode the audio of {file_name}: {exc}", retryable=False, kind="bad_input"
        ) from exc


def extract_audio(
    source: Path,
    dest_dir: Path,
    cut: Cut,
    *,
    progress: Callable[[float, str], None],
    is_cancelled: Callable[[], bool],
) -> Extracted | None:
    """Write the audio of ``source`` to ``dest_dir/audio.<format>``; None when cancelled.

    ``progress(fraction, message)`` is called about twice a second with the decoded share.
    """
    import av

    with _open(source) as container:
        if not container.streams.audio:
            raise HandlerError(f"{source.name} has no audio stream", retryable=False, kind="no_audio")
        stream = container.streams.audio[0]
        info = _stream_info(stream)
        duration = _duration_s(container, stream)
        _check_range(cut, duration)
        rate, layout = _target(cut, info)
        if cut.start_s:
            # not seekable: decode from the start, the window still cuts by time
            with contextlib.suppress(av.error.FFmpegError):
                container.seek(int(cut.start_s * 1_000_000), backward=True, any_frame=False)
        path = dest_dir / f"audio.{cut.format}"
        known_ends = [end for end in (cut.end_s, duration) if end is not None]
        stop_s = min(known_ends) if known_ends else None
        written = _transcode(
            _decoded(container, stream, source.name),
            path,
            cut,
            rate,
            layout,
            lambda seconds: progress(_share(seconds, cut.start_s or 0.0, stop_s), f"{seconds:.0f} s decoded"),
            is_cancelled,
        )
    if written is None:
        path.unlink(missing_ok=True)
        return None
    if written == 0:
        path.unlink(missing_ok=True)
        if cut.start_s:
            raise _bad_params(f"start_s ({cut.start_s} s) is past the end of the audio")
        raise HandlerError(f"{source.name} holds no audio samples", retryable=False, kind="no_audio")
    path.chmod(PRIVATE_FILE_MODE)
    with av.open(str(path)) as written_file:
        output = _stream_info(written_file.streams.audio[0])
    return Extracted(
        path=path,
        format=cut.format,
        duration_s=duration,
        output_duration_s=written / rate,
        source=info,
        output=output,
    )


def _share(seconds: float, start_s: float, stop_s: float | None) -> float:
    if stop_s is None or stop_s <= start_s:
        return 0.0
    return min(1.0, max(0.0, (seconds - start_s) / (stop_s - start_s)))


def _transcode(
    frames: Iterator[AudioFrame],
    path: Path,
    cut: Cut,
    rate: int,
    layout: str,
    progress: Callable[[float], None],
    is_cancelled: Callable[[], bool],
) -> int | None:
    """Encode the kept samples into ``path``; the number written, or None when cancelled."""
    import av
    import numpy as np

    to_float = av.AudioResampler(format="fltp", layout=layout, rate=rate)
    with av.open(str(path), "w", format=cut.format) as out:
        encoder = out.add_stream(CODECS[cut.format], rate=rate, layout=layout)
        assert isinstance(encoder, av.audio.stream.AudioStream)
        to_encoder = av.AudioResampler(format=encoder.format.name, layout=layout, rate=rate)
        window: _Window | None = None
        reported = time.monotonic()

        def encode(frame: AudioFrame | None) -> None:
            for converted in to_encoder.resample(frame):
                out.mux(encoder.encode(converted))

        def keep(resampled: list[AudioFrame]) -> None:
            assert window is not None
            for piece in resampled:
                samples = window.take(piece.to_ndarray())
                if samples is not None:
                    kept = av.AudioFrame.from_ndarray(
                        np.ascontiguousarray(samples), format="fltp", layout=layout
                    )
                    kept.sample_rate = rate
                    encode(kept)

        for count, frame in enumerate(frames, start=1):
            if window is None:
                window = _Window(cut, rate, frame.time if frame.time is not None else (cut.start_s or 0.0))
            frame.pts = None  # the window counts samples; gaps in the source's times are not kept
            keep(to_float.resample(frame))
            if window.done:
                break
            if count % CANCEL_EVERY == 0:
                if is_cancelled():
                    return None
                if time.monotonic() - reported >= PROGRESS_EVERY_S:
                    reported = time.monotonic()
                    progress(window.position / rate)
        if window is None:
            return 0
        if not window.done:
            keep(to_float.resample(None))
        encode(None)
        out.mux(encoder.encode(None))
        return window.kept
