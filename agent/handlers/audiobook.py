"""``audiobook``: a PDF, DOCX, EPUB, Markdown or text file read aloud, one audio file per chapter.

Chapters come from the PDF's outline (else ``pages_per_chapter`` page ranges), the DOCX or
Markdown headings, or the EPUB's spine and table of contents. Each chapter's title and sentences
are spoken by the engine in batches (progress by characters spoken, cancellation between
batches) into a WAV per chapter; those are encoded to MP3 or Opus and joined into one file with a
chapter mark at each chapter.

Params: ``local_path`` / ``input`` (which file); ``engine`` ``espeak`` (default) or ``piper``
(``taskpost[piper]``); ``voice`` (espeak: ``en-us``, ``en-gb+f3``... as ``espeak-ng --voices``
lists them; piper: ``joe``); ``rate_wpm``; ``format`` ``mp3`` or ``opus``; ``bitrate_kbps``;
``pages_per_chapter``.

Outputs: ``chapter-01.mp3`` ..., ``book.mp3`` (or ``.opus``) with chapter marks, ``toc.json``.
Result: ``{"title", "source_format", "engine", "voice", "format", "chapters", "chars",
"duration_s", "toc": [{"index", "title", "start_s", "duration_s", "chars", "file"}]}``.

Error kinds: ``bad_input`` (unreadable file), ``no_text``, ``unsupported_format``, ``bad_params``
(params, unknown voice), ``missing_extra``, ``missing_tool`` (no espeak-ng binary).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import ValidationError

from taskpost.agent.handlers.base import HandlerError, TaskContext
from taskpost.agent.handlers.params import AudiobookParams, Params
from taskpost.agent.media.books import Book, read_book
from taskpost.agent.media.books.audio import ChapterAudio, WavWriter, encode, join
from taskpost.agent.media.books.sentences import batches, split_sentences
from taskpost.agent.media.sources import media_input
from taskpost.agent.media.tts import TtsEngine, make_engine
from taskpost.agent.workdir import make_private_dirs, write_private_text

if TYPE_CHECKING:
    from taskpost.agent.settings import AgentSettings

SPEAKING_SHARE = 0.85
"""Progress up to here is speech (by characters); the rest is encoding."""
BATCH_SENTENCES = 8
BATCH_CHARS = 1000
"""A batch is the unit between cancellation checks: a few seconds of synthesis at most."""


class AudiobookHandler:
    """Reads documents aloud with an offline speech engine."""

    task_type = "audiobook"
    params_model: ClassVar[type[Params]] = AudiobookParams
    requires: ClassVar[dict[str, str]] = {
        "av": "taskpost[audiobook]",
        "pypdfium2": "taskpost[audiobook]",
        "docx": "taskpost[audiobook]",
        "lxml": "taskpost[audiobook]",
    }
    """espeak-ng is a Debian package; without it only espeak jobs fail (``missing_tool``)."""

    def setup(self, settings: AgentSettings) -> None:
        """Nothing to preload: a Piper voice loads with the first job that asks for it."""

    def run(self, ctx: TaskContext) -> dict[str, Any]:
        params = parse_params(ctx.params)
        audio_dir = ctx.work_dir / "audiobook"
        make_private_dirs(audio_dir)
        engine = make_engine(
            params.engine, voice=params.voice, rate_wpm=params.rate_wpm, scratch_dir=audio_dir
        )
        source_format, book = read_book(media_input(ctx), pages_per_chapter=params.pages_per_chapter)
        ctx.heartbeat(0.0, f"reading {len(book.chapters)} chapters aloud")
        spoken = speak_book(ctx, engine, book, audio_dir)
        if spoken is None:
            return {"cancelled": True}
        toc = write_audio(ctx, spoken, book, params)
        if toc is None:
            return {"cancelled": True}
        ctx.heartbeat(1.0, "done")
        return {
            "title": book.title,
            "source_format": str(source_format),
            "engine": engine.name,
            "voice": engine.voice,
            "format": params.format,
            "chapters": len(toc),
            "chars": sum(entry["chars"] for entry in toc),
            "duration_s": round(sum(chapter.duration_s for chapter in spoken), 3),
            "toc": toc,
        }


def parse_params(raw: dict[str, Any]) -> AudiobookParams:
    try:
        return AudiobookParams.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or 'params'}: {error['msg']}"
            for error in exc.errors()
        )
        raise HandlerError(f"bad params: {problems}", retryable=False, kind="bad_params") from exc


def chapter_sentences(title: str, text: str) -> list[str]:
    """What is spoken for a chapter: its title as a sentence of its own, then its text."""
    heading = title if title.endswith((".", "!", "?", ":")) else title + "."
    return [heading, *split_sentences(text)]


def speak_book(ctx: TaskContext, engine: TtsEngine, book: Book, folder: Path) -> list[ChapterAudio] | None:
    """One WAV per chapter; None when the task was cancelled (checked before every batch)."""
    chapters = [chapter_sentences(chapter.title, chapter.text) for chapter in book.chapters]
    total = sum(len(sentence) for sentences in chapters for sentence in sentences)
    done = 0
    spoken = []
    for number, (chapter, sentences) in enumerate(zip(book.chapters, chapters, strict=True), start=1):
        writer = WavWriter(folder / f"chapter-{number:02d}.wav", engine.sample_rate)
        try:
            for batch in batches(sentences, max_sentences=BATCH_SENTENCES, max_chars=BATCH_CHARS):
                if ctx.is_cancelled():
                    return None
                writer.write(engine.speak(batch))
                done += sum(len(sentence) for sentence in batch)
                ctx.heartbeat(
                    SPEAKING_SHARE * done / total,
                    f"chapter {number}/{len(chapters)}: {done}/{total} characters spoken",
                )
        finally:
            writer.close()
        spoken.append(ChapterAudio(chapter.title, writer.path, writer.samples, engine.sample_rate))
    return spoken


def write_audio(
    ctx: TaskContext, spoken: list[ChapterAudio], book: Book, params: AudiobookParams
) -> list[dict[str, Any]] | None:
    """The chapter files, the joined book and toc.json; the table of contents, or None if cancelled."""
    fmt, bitrate = params.format, params.bitrate_kbps
    out = ctx.output_dir
    toc: list[dict[str, Any]] = []
    start = 0
    for number, (chapter, audio) in enumerate(zip(book.chapters, spoken, strict=True), start=1):
        name = f"chapter-{number:02d}.{fmt}"
        if not encode(audio, out / name, fmt, bitrate, cancelled=ctx.is_cancelled):
            return None
        toc.append(
            {
                "index": number,
                "title": chapter.title,
                "start_s": round(start / audio.sample_rate, 3),
                "duration_s": round(audio.duration_s, 3),
                "chars": chapter.chars,
                "file": name,
            }
        )
        start += audio.samples
        ctx.heartbeat(SPEAKING_SHARE + (1 - SPEAKING_SHARE) / 2 * number / len(spoken), f"encoded {name}")
    if not join(spoken, out / f"book.{fmt}", fmt, bitrate, title=book.title, cancelled=ctx.is_cancelled):
        return None
    write_private_text(out / "toc.json", json.dumps({"title": book.title, "chapters": toc}, indent=2) + "\n")
    return toc
