"""``transcription``: speech to text with faster-whisper, from an upload, a local path or a URL.

Params (all optional):

- ``model``: ``tiny.en`` or ``base`` (packaged, offline), a Whisper size (``small``,
  ``large-v3``), a hub id, or a local CTranslate2 directory. Default: ``tiny.en`` when
  ``language`` is ``en``, else ``base``.
- ``language``: a code such as ``en`` or ``de``; absent or ``auto`` detects it
- ``beam_size`` (5), ``vad_filter`` (false), ``word_timestamps`` (false)
- ``initial_prompt``: text that precedes the audio; ``lexicon``: words to expect (hotwords)
- ``allow_download`` (false): fetch a hub model missing from the local cache
- ``diarize`` (false): label each segment with its speaker (``S1``, ``S2``, ...; needs
  ``taskpost[diarize]``, see ``agent.media.diarization``); ``num_speakers`` when it is known
- ``local_path`` or ``input``: which file to transcribe (see ``agent.media.sources``)
- ``url``: an http(s) link to transcribe instead: a direct media link is fetched over plain HTTP,
  a page (YouTube or any site yt-dlp knows) goes through yt-dlp, which needs ``taskpost[download]``
  (see ``agent.media.fetch``); ``max_size_mb`` (2048) and ``max_duration_s`` (14400) limit it

Outputs ``transcript.txt``, ``transcript.srt``, ``transcript.vtt`` and ``segments.json``; the
result holds the text, the language and its probability, the duration and the real-time factor.
A ``url`` job reports the fetch as 0..0.3 of its progress and adds ``source`` (what was fetched:
URL, title, size, duration) to its result.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from taskpost.agent.handlers.base import HandlerError, TaskContext
from taskpost.agent.handlers.params import MAX_BEAM_SIZE, Params, TranscriptionParams
from taskpost.agent.media.diarization.transcript import cue_text, label_segments, speaker_turns
from taskpost.agent.media.download import parse_limits
from taskpost.agent.media.fetch import fetch_media
from taskpost.agent.media.progress import ProgressWindow
from taskpost.agent.media.sources import media_input
from taskpost.agent.media.whisper import (
    ENGLISH_MODEL,
    MULTILINGUAL_MODEL,
    PACKAGED_MODELS,
    STT_REQUIRES,
    choose_device,
    faster_whisper,
    shared_models,
)
from taskpost.agent.workdir import write_private_text
from taskpost.protocol import LOCAL_PATH_PARAM

if TYPE_CHECKING:
    from taskpost.agent.media.diarization.base import Diarizer
    from taskpost.agent.settings import AgentSettings

SAMPLE_RATE = 16_000
FETCH_SHARE = 0.3
"""Part of a ``url`` job's progress that fetching the media takes."""
DIARIZE_FROM = 0.8
"""With ``diarize``, transcription reports 0..0.8 of the progress and speaker labels the rest."""


def _bad_params(message: str) -> HandlerError:
    return HandlerError(message, retryable=False, kind="bad_params")


def _flag(params: dict[str, Any], name: str) -> bool:
    value = params.get(name, False)
    if not isinstance(value, bool):
        raise _bad_params(f"{name} must be true or false, got {value!r}")
    return value


@dataclass(frozen=True)
class Options:
    """A transcription job's params, checked."""

    model: str
    language: str | None
    beam_size: int
    vad_filter: bool
    word_timestamps: bool
    initial_prompt: str | None
    hotwords: str | None
    allow_download: bool
    diarize: bool = False
    num_speakers: int | None = None

    @classmethod
    def parse(cls, params: dict[str, Any]) -> Options:
        language = params.get("language")
        if language is not None and not isinstance(language, str):
            raise _bad_params(f"language must be a language code such as 'en', got {language!r}")
        language = (language or "").strip().lower()
        language = None if language in ("", "auto") else language
        model = params.get("model") or (ENGLISH_MODEL if language == "en" else MULTILINGUAL_MODEL)
        if not isinstance(model, str):
            raise _bad_params(f"model must be a name or a directory, got {model!r}")
        beam_size = params.get("beam_size", 5)
        if (
            isinstance(beam_size, bool)
            or not isinstance(beam_size, int)
            or not 1 <= beam_size <= MAX_BEAM_SIZE
        ):
            raise _bad_params(f"beam_size must be an integer from 1 to {MAX_BEAM_SIZE}, got {beam_size!r}")
        prompt = params.get("initial_prompt")
        if prompt is not None and not isinstance(prompt, str):
            raise _bad_params("initial_prompt must be text")
        lexicon = params.get("lexicon") or []
        if not isinstance(lexicon, list) or not all(isinstance(word, str) for word in lexicon):
            raise _bad_params("lexicon must be a list of words")
        num_speakers = params.get("num_speakers")
        if num_speakers is not None and (
            isinstance(num_speakers, bool) or not isinstance(num_speakers, int) or num_speakers < 1
        ):
            raise _bad_params(f"num_speakers must be a positive integer, got {num_speakers!r}")
        return cls(
            model=model,
            language=language,
            beam_size=beam_size,
            vad_filter=_flag(params, "vad_filter"),
            word_timestamps=_flag(params, "word_timestamps"),
            initial_prompt=prompt or None,
            hotwords=", ".join(word.strip() for word in lexicon if word.strip()) or None,
            allow_download=_flag(params, "allow_download"),
            diarize=_flag(params, "diarize"),
            num_speakers=num_speakers,
        )


def load_audio(path: Path) -> Any:
    """The file's first audio stream as 16 kHz mono float32 samples; bad media is not retried."""
    import av  # a dependency of faster-whisper

    try:
        with av.open(str(path), metadata_errors="ignore") as container:
            if not container.streams.audio:
                raise HandlerError(f"{path.name} has no audio stream", retryable=False, kind="no_audio")
        audio = faster_whisper().decode_audio(str(path), sampling_rate=SAMPLE_RATE)
    except av.error.FFmpegError as exc:
        raise HandlerError(
            f"cannot decode {path.name} as audio or video: {exc}", retryable=False, kind="bad_input"
        ) from exc
    if len(audio) == 0:
        raise HandlerError(f"{path.name} holds no audio samples", retryable=False, kind="no_audio")
    return audio


def _timestamp(seconds: float, separator: str) -> str:
    hours, rest = divmod(round(seconds * 1000), 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{millis:03d}"


def to_srt(segments: list[dict[str, Any]]) -> str:
    """SubRip subtitles: numbered cues, ``HH:MM:SS,mmm`` times."""
    cues = [
        f"{n}\n{_timestamp(s['start'], ',')} --> {_timestamp(s['end'], ',')}\n{cue_text(s)}\n"
        for n, s in enumerate(segments, start=1)
    ]
    return "\n".join(cues)


def to_vtt(segments: list[dict[str, Any]]) -> str:
    """WebVTT subtitles: a header, then ``HH:MM:SS.mmm`` cues."""
    cues = [
        f"{_timestamp(s['start'], '.')} --> {_timestamp(s['end'], '.')}\n{cue_text(s)}\n" for s in segments
    ]
    return "\n".join(["WEBVTT\n", *cues])


def _segment(piece: Any, words: bool) -> dict[str, Any]:
    segment: dict[str, Any] = {
        "id": piece.id,
        "start": round(piece.start, 3),
        "end": round(piece.end, 3),
        "text": piece.text.strip(),
    }
    if words and piece.words:
        segment["words"] = [
            {"start": round(w.start, 3), "end": round(w.end, 3), "word": w.word, "probability": w.probability}
            for w in piece.words
        ]
    return segment


def _default_models_dir() -> Path:
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "taskpost" / "models"


class TranscriptionHandler:
    """Transcribes speech in an audio or video file with faster-whisper."""

    task_type = "transcription"
    params_model: ClassVar[type[Params]] = TranscriptionParams
    requires: ClassVar[dict[str, str]] = STT_REQUIRES

    def __init__(self, models_dir: Path | None = None, diarizer: Diarizer | None = None) -> None:
        """``diarizer``: labels speakers for ``diarize`` jobs; by default CAM++, loaded on first use."""
        self._models_dir_given = models_dir is not None
        self.models = shared_models(models_dir or _default_models_dir())
        self.diarizer = diarizer

    def setup(self, settings: AgentSettings) -> None:
        """Load the packaged models on this agent's device, so that the first task starts at once."""
        if settings.work_dir is not None and not self._models_dir_given:
            self.models = shared_models(settings.work_dir / "models")
        device = choose_device(settings.worker_type, settings.force_cpu)
        for name in PACKAGED_MODELS:
            self.models.get(name, device)

    def run(self, ctx: TaskContext) -> dict[str, Any]:
        if ctx.params.get("url") is None:
            return self.transcribe_path(ctx, media_input(ctx))
        if ctx.params.get(LOCAL_PATH_PARAM) is not None or ctx.inputs:
            raise _bad_params("give one source: url, local_path or an uploaded file")
        Options.parse(ctx.params)  # refuse bad params before fetching anything
        limits = parse_limits(ctx.params)

        def progress(fraction: float | None, message: str) -> None:
            ctx.heartbeat(None if fraction is None else fraction * FETCH_SHARE, message)

        ctx.heartbeat(0.0, "fetching the URL")
        fetched = fetch_media(
            ctx.params["url"],
            ctx.work_dir / "download",
            limits=limits,
            progress=progress,
            is_cancelled=ctx.is_cancelled,
            logger=ctx.logger,
            policy=ctx.url_policy,
        )
        ctx.logger.info("fetched %s (%d bytes)", fetched.metadata["source_url"], fetched.metadata["size"])
        result = self.transcribe_path(ProgressWindow(ctx, FETCH_SHARE, 1.0), fetched.path)
        return {**result, "source": fetched.metadata}

    def transcribe_path(self, ctx: TaskContext, path: Path) -> dict[str, Any]:
        """Transcribe ``path``, write the transcript files to ``ctx.output_dir``, return the result."""
        options = Options.parse(ctx.params)
        diarizer = self._diarizer(ctx) if options.diarize else None
        share = DIARIZE_FROM if diarizer is not None else 1.0
        ctx.heartbeat(0.0, f"loading model {options.model}")
        loading = time.perf_counter()
        wanted = choose_device(ctx.worker_type, ctx.force_cpu)
        model, device = self.models.get(options.model, wanted, allow_download=options.allow_download)
        model_load_s = time.perf_counter() - loading
        if options.language is not None and options.language not in model.supported_languages:
            raise _bad_params(f"model {options.model!r} does not know language {options.language!r}")

        started = time.perf_counter()
        audio = load_audio(path)
        duration = len(audio) / SAMPLE_RATE
        ctx.heartbeat(0.0, f"transcribing {duration:.0f} s of audio")
        pieces, info = model.transcribe(
            audio,
            language=options.language,
            beam_size=options.beam_size,
            vad_filter=options.vad_filter,
            word_timestamps=options.word_timestamps,
            initial_prompt=options.initial_prompt,
            hotwords=options.hotwords,
        )
        segments: list[dict[str, Any]] = []
        for piece in pieces:
            segments.append(_segment(piece, options.word_timestamps))
            latest = segments[-1]
            ctx.publish_partial({"start": latest["start"], "end": latest["end"], "text": latest["text"]})
            done = min(piece.end, duration)
            ctx.heartbeat(share * done / duration, f"{done:.0f}/{duration:.0f} s of audio")
            if ctx.is_cancelled():
                ctx.logger.info("transcription cancelled after %.1f s of audio", done)
                return {"cancelled": True, "segments": len(segments), "done_s": round(done, 3)}
        speakers = None if diarizer is None else self._label(ctx, diarizer, audio, segments, options)
        processing_s = time.perf_counter() - started

        text = " ".join(segment["text"] for segment in segments if segment["text"])
        summary: dict[str, Any] = {
            "language": info.language,
            "language_probability": round(float(info.language_probability), 4),
            "duration_s": round(duration, 3),
            "model": options.model,
        }
        if speakers is not None:
            summary["speakers"] = speakers
        out = ctx.output_dir
        write_private_text(
            out / "transcript.txt", (text if speakers is None else speaker_turns(segments)) + "\n"
        )
        write_private_text(out / "transcript.srt", to_srt(segments))
        write_private_text(out / "transcript.vtt", to_vtt(segments))
        document = {**summary, "segments": segments}
        write_private_text(out / "segments.json", json.dumps(document, ensure_ascii=False, indent=1))
        ctx.heartbeat(1.0, "done")
        return {
            "text": text,
            **summary,
            "processing_s": round(processing_s, 3),
            "real_time_factor": round(processing_s / duration, 4),
            "model_load_s": round(model_load_s, 3),
            "device": device.device,
            "compute_type": device.compute_type,
            "segments": len(segments),
            "outputs": ["segments.json", "transcript.srt", "transcript.txt", "transcript.vtt"],
        }

    def _diarizer(self, ctx: TaskContext) -> Diarizer:
        if self.diarizer is None:
            from taskpost.agent.media.diarization.campp import shared_diarizer

            ctx.heartbeat(0.0, "loading the speaker model")
            self.diarizer = shared_diarizer()
        return self.diarizer

    def _label(
        self,
        ctx: TaskContext,
        diarizer: Diarizer,
        audio: Any,
        segments: list[dict[str, Any]],
        options: Options,
    ) -> int:
        """Label each segment's speaker (the last share of the progress); returns how many there are."""

        def progress(fraction: float) -> None:
            if ctx.is_cancelled():
                raise HandlerError("cancelled while labelling speakers", kind="cancelled")
            ctx.heartbeat(DIARIZE_FROM + (1 - DIARIZE_FROM) * fraction, "labelling speakers")

        started = time.perf_counter()
        progress(0.0)
        count = label_segments(
            diarizer, audio, segments, num_speakers=options.num_speakers, progress=progress
        )
        ctx.logger.info(
            "%d speakers in %d segments (%.1f s)", count, len(segments), time.perf_counter() - started
        )
        return count
