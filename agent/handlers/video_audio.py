"""``video_audio``: the audio track of a video (or of any media file) as WAV, FLAC or MP3.

Params (see ``VideoAudioParams``):

- one source: an uploaded file (``input`` names it when there are several), ``local_path``, or
  ``url`` (fetched like a transcription's URL, with ``max_size_mb`` and ``max_duration_s``)
- ``format``: ``wav`` (16-bit PCM, the default), ``flac`` or ``mp3``
- ``start_s`` / ``end_s``: keep only this range (``end_s`` after ``start_s``; a range starting
  past the end is refused, an end past it is cut at the end)
- ``sample_rate`` (the source's by default) and ``mono`` (false: the source's channels; MP3 takes
  at most two, so more are mixed down to stereo)

Outputs ``audio.<format>``; the result holds the source's ``duration_s`` and audio ``stream``
(codec, sample rate, channels, layout, bit rate), the ``output_duration_s`` and the output's own
stream. Errors: ``no_audio``, ``bad_input`` (not media), ``bad_params``, and a URL's fetch errors.
Progress by decoded time (a URL's fetch takes the first 0.3); cancellation is checked every few
dozen decoded frames.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import ValidationError

from taskpost.agent.handlers.base import HandlerError, TaskContext
from taskpost.agent.handlers.params import Params, VideoAudioParams
from taskpost.agent.media.audio_extract import Cut, extract_audio
from taskpost.agent.media.download import parse_limits
from taskpost.agent.media.fetch import fetch_media
from taskpost.agent.media.sources import media_input

if TYPE_CHECKING:
    from pathlib import Path

    from taskpost.agent.settings import AgentSettings

FETCH_SHARE = 0.3
"""Part of a ``url`` job's progress that fetching the media takes."""


def _bad_params(message: str) -> HandlerError:
    return HandlerError(message, retryable=False, kind="bad_params")


def parse_params(params: dict[str, Any]) -> VideoAudioParams:
    """The job's params, checked; refusals are ``bad_params``."""
    try:
        parsed = VideoAudioParams.model_validate(params)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or 'params'}: {error['msg']}"
            for error in exc.errors()
        )
        raise _bad_params(f"bad params: {problems}") from exc
    if parsed.start_s is not None and parsed.end_s is not None and parsed.end_s <= parsed.start_s:
        raise _bad_params(f"end_s ({parsed.end_s}) must be after start_s ({parsed.start_s})")
    if parsed.url is not None and (parsed.local_path is not None or parsed.input is not None):
        raise _bad_params("give one source: url, local_path or an uploaded file")
    return parsed


class VideoAudioHandler:
    """Extracts the audio track of a media file with PyAV."""

    task_type = "video_audio"
    params_model: ClassVar[type[Params]] = VideoAudioParams
    requires: ClassVar[dict[str, str]] = {"av": "taskpost[video]", "numpy": "taskpost[video]"}

    def setup(self, settings: AgentSettings) -> None:
        """Nothing to load: PyAV is imported by the first task."""

    def run(self, ctx: TaskContext) -> dict[str, Any]:
        params = parse_params(ctx.params)
        cut = Cut(
            format=params.format,
            start_s=params.start_s,
            end_s=params.end_s,
            sample_rate=params.sample_rate,
            mono=params.mono,
        )
        share = 0.0
        fetched: dict[str, Any] | None = None
        if params.url is None:
            source = media_input(ctx)
        else:
            if ctx.inputs:
                raise _bad_params("give one source: url, local_path or an uploaded file")
            source, fetched = self._fetch(ctx, params.url)
            share = FETCH_SHARE

        def progress(fraction: float, message: str) -> None:
            ctx.heartbeat(share + (1 - share) * fraction, message)

        progress(0.0, f"extracting the audio of {source.name}")
        extracted = extract_audio(
            source, ctx.output_dir, cut, progress=progress, is_cancelled=ctx.is_cancelled
        )
        if extracted is None:
            ctx.logger.info("audio extraction cancelled")
            return {"cancelled": True}
        ctx.heartbeat(1.0, "done")
        result: dict[str, Any] = {
            **extracted.summary(),
            "start_s": params.start_s,
            "end_s": params.end_s,
            "outputs": [extracted.path.name],
        }
        if fetched is not None:
            result["source"] = fetched
        return result

    def _fetch(self, ctx: TaskContext, url: str) -> tuple[Path, dict[str, Any]]:
        def progress(fraction: float | None, message: str) -> None:
            ctx.heartbeat(None if fraction is None else fraction * FETCH_SHARE, message)

        ctx.heartbeat(0.0, "fetching the URL")
        fetched = fetch_media(
            url,
            ctx.work_dir / "download",
            limits=parse_limits(ctx.params),
            progress=progress,
            is_cancelled=ctx.is_cancelled,
            logger=ctx.logger,
            policy=ctx.url_policy,
        )
        return fetched.path, fetched.metadata
