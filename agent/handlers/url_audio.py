"""``url_audio``: download the audio of a URL with yt-dlp, then transcribe it, in one task.

Params:

- ``url`` (required): a YouTube (or other yt-dlp site) page, a page with an HTML5 ``<audio>`` or
  ``<video>`` tag, or a direct link to a media file
- ``transcribe`` (true): transcribe the audio; false keeps the downloaded audio as an output
- ``max_duration_s`` (14400): refuse longer media (``kind: too_long``)
- ``max_size_mb`` (2048): refuse larger downloads (``kind: too_large``)
- every ``transcription`` param (``model``, ``language``, ``beam_size``, ...) applies too

Outputs ``metadata.json`` (title, duration, uploader, source URL), then the transcript files of
the ``transcription`` handler, or the audio file (``audio.EXT``) when ``transcribe`` is false.

Transcription runs in the same task rather than as a follow-up job: the audio never travels back
to the coordinator, one job holds the whole outcome, and a retry redoes both steps. The handler
owns a ``TranscriptionHandler`` set up in its own ``setup()``. The handler ``requires`` both the
``download`` and the ``stt`` extras: an agent that could only download would take jobs that want
a transcript and fail them, so without either it does not offer ``url_audio`` at all.
Progress: the download reports 0..0.3 (0..0.95 without transcription), transcription the rest.
"""

from __future__ import annotations

import json
import logging
import shutil
from typing import TYPE_CHECKING, Any, ClassVar

from taskpost.agent.handlers.base import HandlerError, MissingExtra, TaskContext
from taskpost.agent.handlers.params import Params, UrlAudioParams
from taskpost.agent.media.download import download_audio, parse_limits, require_ffmpeg
from taskpost.agent.media.download_errors import yt_dlp
from taskpost.agent.media.progress import ProgressWindow
from taskpost.agent.media.whisper import STT_REQUIRES
from taskpost.agent.workdir import PRIVATE_FILE_MODE, write_private_text

if TYPE_CHECKING:
    from taskpost.agent.handlers.transcription import TranscriptionHandler
    from taskpost.agent.settings import AgentSettings

logger = logging.getLogger(__name__)

DOWNLOAD_SHARE = 0.3
"""Part of the task's progress the download takes when the audio is transcribed afterwards."""


def _bad_params(message: str) -> HandlerError:
    return HandlerError(message, retryable=False, kind="bad_params")


class UrlAudioHandler:
    """Downloads the best audio of a URL and transcribes it."""

    task_type = "url_audio"
    params_model: ClassVar[type[Params]] = UrlAudioParams
    requires: ClassVar[dict[str, str]] = {"yt_dlp": "taskpost[download]", **STT_REQUIRES}

    def __init__(self, transcriber: TranscriptionHandler | None = None) -> None:
        """``transcriber``: one to share (tests); by default ``setup`` makes its own."""
        self.transcriber = transcriber

    def setup(self, settings: AgentSettings) -> None:
        """Check yt-dlp and ffmpeg and set up transcription.

        Without the ``stt`` extra this fails, so the agent does not offer ``url_audio`` at all:
        an agent that could only download would take jobs that want a transcript and kill them.
        """
        yt_dlp()
        require_ffmpeg()
        if self.transcriber is not None:
            return
        from taskpost.agent.handlers.transcription import TranscriptionHandler

        transcriber = TranscriptionHandler()
        transcriber.setup(settings)
        self.transcriber = transcriber

    def run(self, ctx: TaskContext) -> dict[str, Any]:
        params = ctx.params
        transcribe = params.get("transcribe", True)
        if not isinstance(transcribe, bool):
            raise _bad_params(f"transcribe must be true or false, got {transcribe!r}")
        limits = parse_limits(params)
        transcriber = self.transcriber if transcribe else None
        if transcribe and transcriber is None:
            raise MissingExtra("stt", package="faster-whisper")
        download_end = DOWNLOAD_SHARE if transcribe else 0.95
        folder = ctx.work_dir / "download"

        def progress(fraction: float | None, message: str) -> None:
            ctx.heartbeat(None if fraction is None else fraction * download_end, message)

        ctx.heartbeat(0.0, "looking up the URL")
        downloaded = download_audio(
            params.get("url"),
            folder,
            limits=limits,
            progress=progress,
            is_cancelled=ctx.is_cancelled,
            logger=ctx.logger,
            policy=ctx.url_policy,
        )
        meta = downloaded.metadata
        ctx.logger.info(
            "downloaded %r (%s s, %d bytes) from %s",
            meta["title"],
            meta["duration_s"],
            meta["size"],
            meta["source_url"],
        )
        result: dict[str, Any] = {"metadata": meta}
        if transcriber is not None:
            window = ProgressWindow(ctx, download_end, 1.0)
            result["transcription"] = transcriber.transcribe_path(window, downloaded.path)
        else:
            audio = ctx.output_dir / downloaded.path.name
            shutil.move(downloaded.path, audio)
            audio.chmod(PRIVATE_FILE_MODE)  # written by yt-dlp and ffmpeg under the umask
            result["audio"] = downloaded.path.name
        write_private_text(ctx.output_dir / "metadata.json", json.dumps(meta, ensure_ascii=False, indent=1))
        ctx.heartbeat(1.0, "done")
        return result
