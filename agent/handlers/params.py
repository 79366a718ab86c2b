"""The parameters of the built-in task types, as pydantic models.

Each handler names its model in ``params_model``; the agent sends the model's JSON Schema when it
registers, and the coordinator checks every submit of the type against it (unknown fields, wrong
types and out-of-range values are refused with 422 before the job is queued). The handlers still
read ``ctx.params`` themselves: these models say what they accept, in one place per type.

A model that forbids extra fields is a closed contract; ``noop`` allows them, since it echoes
whatever it gets and tests and benchmarks rely on that.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from taskpost.agent.media.download import Limits
from taskpost.agent.media.pages import DEFAULT_DPI, MAX_DPI, MIN_DPI

MAX_BEAM_SIZE = 32
DEFAULT_MAX_SIZE_MB = Limits().max_bytes / 1024**2
DEFAULT_MAX_DURATION_S = Limits().max_duration_s

OcrEngineName = Literal["rapidocr", "easyocr"]
"""The OCR engines an agent knows (``agent.media.ocr_engines.ENGINE_FACTORIES``)."""


class Params(BaseModel):
    """A task type's parameters: a closed set (any other field is refused) unless a model allows
    extra fields."""

    model_config = ConfigDict(extra="forbid")


class MediaSource(Params):
    """Which file a media task reads: an uploaded input, or a file on the agent's machine."""

    local_path: str | None = Field(
        default=None,
        min_length=1,
        description="A file on the agent's machine, absolute or relative to its --files-root directories.",
    )
    input: str | None = Field(
        default=None, min_length=1, description="The uploaded input to read, when the job has several."
    )


class DownloadLimits(Params):
    """What fetching a URL may take."""

    max_size_mb: float = Field(default=DEFAULT_MAX_SIZE_MB, gt=0, description="Refuse larger downloads.")
    max_duration_s: float = Field(default=DEFAULT_MAX_DURATION_S, gt=0, description="Refuse longer media.")


class TranscriptionOptions(Params):
    """How faster-whisper transcribes."""

    model: str | None = Field(
        default=None,
        min_length=1,
        description="tiny.en or base (packaged), a Whisper size, a hub id or a model directory.",
    )
    language: str | None = Field(
        default=None, description="A language code such as en; absent or auto detects it."
    )
    beam_size: int = Field(default=5, ge=1, le=MAX_BEAM_SIZE)
    vad_filter: bool = False
    word_timestamps: bool = False
    initial_prompt: str | None = Field(default=None, description="Text that precedes the audio.")
    lexicon: list[str] = Field(default_factory=list, description="Words to expect (hotwords).")
    allow_download: bool = Field(default=False, description="Fetch a hub model missing from the local cache.")


class NoopParams(Params):
    """``noop``: every field optional, and any further field is echoed back."""

    model_config = ConfigDict(extra="allow")

    sleep_s: float = Field(default=0, ge=0, description="Sleep this long, reporting progress.")
    fail: str | None = Field(default=None, description="Fail the attempt with this message.")
    fail_retryable: bool = True
    retry_delay_s: float | None = Field(default=None, ge=0)
    outputs: dict[str, str] = Field(default_factory=dict, description="Output files to write: name -> text.")
    echo_inputs: bool = Field(default=False, description="List the sha256 and size of every input.")
    partials: list[str] = Field(
        default_factory=list,
        max_length=1000,
        description="Publish these as partial output, spread over sleep_s (a growing transcript).",
    )


class TranscriptionParams(MediaSource, DownloadLimits, TranscriptionOptions):
    """``transcription``: one source (an upload, ``local_path`` or ``url``) and how to transcribe it."""

    url: str | None = Field(
        default=None,
        min_length=1,
        description="An http(s) link: a media file, or a page yt-dlp understands (taskpost[download]).",
    )


class UrlAudioParams(DownloadLimits, TranscriptionOptions):
    """``url_audio``: the audio of a URL, transcribed unless ``transcribe`` is false."""

    url: str = Field(min_length=1, description="A YouTube (or other yt-dlp site) page, or a media link.")
    transcribe: bool = Field(default=True, description="False keeps the downloaded audio as an output.")


class OcrParams(MediaSource):
    """``ocr``: which file, which engine, and the resolution of rasterised PDF pages."""

    engine: OcrEngineName | None = Field(default=None, description="By default easyocr on GPU agents.")
    dpi: int = Field(default=DEFAULT_DPI, ge=MIN_DPI, le=MAX_DPI)


class DocumentParams(OcrParams):
    """``document``: which file; ``engine`` and ``dpi`` apply to PDF pages that need OCR."""
