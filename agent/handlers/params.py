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
    diarize: bool = Field(default=False, description="Label each segment with a speaker (taskpost[diarize]).")
    num_speakers: int | None = Field(default=None, ge=1, le=32, description="When known; else estimated.")


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


# -- issue 12: each class below is owned by its handler's module; keep edits inside the class --


class NamedInput(Params):
    """A file of this job's inputs, by name (a chained job gets its parent's outputs as inputs)."""

    input: str = Field(min_length=1, description="The name of one of the job's inputs.")


class JobOutputRef(Params):
    """Another completed job's output in the same namespace; the coordinator turns it into an input
    of this job at submit."""

    from_job: str = Field(min_length=1, max_length=36)
    output: str = Field(min_length=1, description="The output's file name, e.g. transcript.txt.")


TextSource = str | NamedInput | JobOutputRef


class LlmOptions(Params):
    """Which provider and model, and how long the answers may be."""

    model: str | None = Field(default=None, min_length=1, description="By default the agent's llm_model.")
    provider: str | None = Field(
        default=None, min_length=1, description="A profile name from the agent's llm_profiles_file."
    )
    max_tokens: int = Field(default=512, ge=1, le=32768)
    temperature: float = Field(default=0.0, ge=0, le=2)


class AnalyzeParams(LlmOptions):
    """``analyze``: named prompts run over a text (inline, an input, or another job's output)."""

    prompts: dict[str, str] | list[dict[str, str]] = Field(
        description='Named prompts {"summary": "Provide a brief summary"}, or a list of such (batch).'
    )
    text: TextSource | None = Field(
        default=None, description="The text, or where it is; by default the job's text input."
    )
    system: str | None = Field(default=None, description="A system message before every prompt.")


class DescribeParams(LlmOptions, MediaSource):
    """``describe``: a description of an image by an OpenAI-compatible vision model."""

    image: NamedInput | JobOutputRef | None = Field(
        default=None, description="By default the job's image input."
    )
    prompt: str = Field(default="Describe this image.", min_length=1)


class WebpageParams(Params):
    """``webpage``: the main text and metadata of a page."""

    url: str = Field(min_length=1, max_length=8000, description="An http(s) URL.")
    max_size_mb: float = Field(
        default=10, gt=0, le=50, description="Refuse larger pages (a parsed page takes many times its size)."
    )
    timeout_s: float = Field(default=30, gt=0, le=600)
    max_redirects: int = Field(default=5, ge=0, le=20)
    respect_robots: bool | None = Field(default=None, description="By default the agent's webpage_robots.")


AudioFormat = Literal["wav", "flac", "mp3"]


class VideoAudioParams(MediaSource, DownloadLimits):
    """``video_audio``: the audio track of a video (or any media file)."""

    url: str | None = Field(default=None, min_length=1, description="An http(s) link to a media file.")
    format: AudioFormat = "wav"
    start_s: float | None = Field(default=None, ge=0)
    end_s: float | None = Field(default=None, gt=0)
    sample_rate: int | None = Field(default=None, ge=8000, le=192000)
    mono: bool = False


class AudiobookParams(MediaSource):
    """``audiobook``: a PDF, DOCX, EPUB, Markdown or text file read aloud, one file per chapter."""

    engine: Literal["espeak", "piper"] = "espeak"
    voice: str | None = Field(default=None, min_length=1, description="An engine voice, e.g. en-us.")
    rate_wpm: int = Field(default=160, ge=80, le=450)
    format: Literal["mp3", "opus"] = "mp3"
    bitrate_kbps: int | None = Field(default=None, ge=8, le=320)
    pages_per_chapter: int = Field(default=10, ge=1, le=1000, description="For PDFs without an outline.")
