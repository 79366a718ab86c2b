"""The ``audiobook`` handler in-process: chapter files, the joined book's chapter marks, progress,
cancellation, and every bad input with its error kind. (Speech accuracy: tests/e2e/test_audiobook.py.)"""

from __future__ import annotations

import json
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from taskpost.agent.handlers.audiobook import AudiobookHandler, chapter_sentences, speak_book, write_audio
from taskpost.agent.handlers.base import HandlerError
from taskpost.agent.handlers.params import AudiobookParams
from taskpost.agent.media.books import Book, Chapter
from taskpost.agent.media.books.audio import encode
from taskpost.agent.media.tts import TtsEngine
from taskpost.agent.media.tts import piper as piper_engine
from taskpost.agent.media.tts.espeak import EspeakEngine, check_voice
from tests.agent.handlers.conftest import RecordingContext
from tests.media_fixtures import books

pytestmark = pytest.mark.media
av = pytest.importorskip("av", reason="needs taskpost[audiobook]")
if shutil.which("espeak-ng") is None:
    pytest.skip("needs espeak-ng (apt-get install espeak-ng)", allow_module_level=True)

MakeCtx = Callable[..., RecordingContext]


def decoded_seconds(path: Path) -> float:
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        return sum(frame.samples for frame in container.decode(stream)) / stream.rate


def chapter_marks(path: Path) -> list[tuple[str, float]]:
    with av.open(str(path)) as container:
        return [
            (mark["metadata"]["title"], float(mark["start"] * mark["time_base"]))
            for mark in container.chapters()
        ]


def test_a_markdown_book_becomes_chapter_files_and_one_book_with_chapter_marks(
    tmp_path: Path, make_media_ctx: MakeCtx
) -> None:
    ctx = make_media_ctx(
        books.write_markdown(tmp_path / "book.md"), {"format": "opus"}, task_type="audiobook"
    )
    result = AudiobookHandler().run(ctx)

    titles = ["Introduction", *(title for title, _ in books.CHAPTERS)]
    assert result["source_format"] == "markdown" and result["title"] == books.BOOK_TITLE
    assert (result["engine"], result["voice"], result["format"]) == ("espeak", "en-us", "opus")
    toc = result["toc"]
    assert [entry["title"] for entry in toc] == titles and result["chapters"] == 4
    out = ctx.output_dir
    assert sorted(path.name for path in out.iterdir()) == [
        "book.opus", "chapter-01.opus", "chapter-02.opus", "chapter-03.opus", "chapter-04.opus", "toc.json",
    ]  # fmt: skip
    start = 0.0
    for entry in toc:  # starts are the sums of the chapters before; each file is as long as its entry
        assert entry["start_s"] == pytest.approx(start, abs=0.002)
        assert decoded_seconds(out / entry["file"]) == pytest.approx(entry["duration_s"], abs=0.05)
        start += entry["duration_s"]
    assert result["duration_s"] == pytest.approx(start, abs=0.002)
    marks = chapter_marks(out / "book.opus")
    assert [title for title, _ in marks] == titles
    assert [at for _, at in marks] == pytest.approx([entry["start_s"] for entry in toc], abs=0.002)
    assert decoded_seconds(out / "book.opus") == pytest.approx(result["duration_s"], abs=0.05)
    assert json.loads((out / "toc.json").read_text())["chapters"] == toc

    spoken = [(p, m) for p, m in ctx.reports if p is not None and m and "characters spoken" in m]
    assert len(spoken) == 4 and spoken[-1][1].startswith("chapter 4/4")
    progress = [p for p, _ in ctx.reports if p is not None]
    assert progress == sorted(progress) and progress[-1] == 1.0


def test_a_cancelled_book_stops_after_the_batch_in_progress(tmp_path: Path, make_media_ctx: MakeCtx) -> None:
    sentences = [f"This is sentence {word} of a long chapter." for word in ("one", "two", "three", "four")]
    path = tmp_path / "long.txt"
    path.write_text(" ".join(sentences * 40), encoding="utf-8")  # 160 sentences: 20 batches
    ctx = make_media_ctx(path, {}, task_type="audiobook")
    ctx.cancel_after = 1  # cancelled by the first progress report
    began = time.monotonic()
    assert AudiobookHandler().run(ctx) == {"cancelled": True}
    assert time.monotonic() - began < 5
    spoken = [m for p, m in ctx.reports if p and m and "characters spoken" in m]
    assert len(spoken) == 1, spoken  # one batch of eight sentences, then it stopped
    assert not (ctx.work_dir / "outputs").exists()


class TickEngine:
    """A stand-in engine: 10 ms of a quiet square wave per character, so durations are known exactly."""

    name = "tick"
    voice = "square"
    sample_rate = 16000

    def __init__(self) -> None:
        self.batches: list[list[str]] = []

    def speak(self, sentences: Sequence[str]) -> bytes:
        self.batches.append(list(sentences))
        samples = 160 * sum(len(sentence) for sentence in sentences)
        return b"".join(b"\x00\x04" if i // 40 % 2 else b"\x00\xfc" for i in range(samples))


def test_any_engine_plugs_in_and_the_toc_follows_its_sample_counts(
    tmp_path: Path, make_media_ctx: MakeCtx
) -> None:
    engine = TickEngine()
    assert isinstance(engine, TtsEngine)
    book = Book("Two chapters", [Chapter("One", "Short. " * 20), Chapter("Two!", "A longer sentence here.")])
    ctx = make_media_ctx(None, {}, task_type="audiobook")
    spoken = speak_book(ctx, engine, book, tmp_path)
    assert spoken is not None
    assert [len(batch) for batch in engine.batches] == [8, 8, 5, 2]  # batches never span chapters
    assert engine.batches[-1] == ["Two!", "A longer sentence here."]
    toc = write_audio(ctx, spoken, book, AudiobookParams(format="mp3"))
    assert toc is not None
    one = sum(len(sentence) for sentence in chapter_sentences("One", "Short. " * 20)) / 100
    assert [(entry["start_s"], entry["duration_s"]) for entry in toc] == [(0.0, one), (one, 0.27)]
    assert encode(spoken[0], tmp_path / "stopped.mp3", "mp3", None, cancelled=lambda: True) is False


def test_espeak_speaks_slower_at_a_lower_rate_and_knows_its_voices(tmp_path: Path) -> None:
    sentences = ["The keeper climbed the stairs every evening.", "He lit the lamp."]
    slow = EspeakEngine(tmp_path, "en-gb+f3", rate_wpm=100).speak(sentences)
    fast = EspeakEngine(tmp_path, "en-us", rate_wpm=300).speak(sentences)
    assert len(slow) > 2 * len(fast) > 0 and len(fast) % 2 == 0
    assert [check_voice(voice) for voice in ("de", "en-US", "gmw/en-US", "en+klatt")] == [
        "de", "en-US", "gmw/en-US", "en+klatt",
    ]  # fmt: skip
    assert list(tmp_path.iterdir()) == []  # scratch files removed


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"voice": "xx-nowhere"}, "no voice 'xx-nowhere'"),
        ({"voice": "en-us+nobody"}, "no voice variant 'nobody'"),
        ({"engine": "piper", "voice": "amy"}, "one voice here"),
        ({"rate_wpm": 10}, "rate_wpm"),
        ({"format": "wav"}, "format"),
        ({"pages_per_chapter": 0}, "pages_per_chapter"),
        ({"speed": 2}, "speed"),
    ],
)
def test_bad_params_are_refused_before_reading(
    tmp_path: Path, make_media_ctx: MakeCtx, params: dict[str, Any], fragment: str
) -> None:
    ctx = make_media_ctx(books.write_markdown(tmp_path / "book.md"), params, task_type="audiobook")
    with pytest.raises(HandlerError) as caught:
        AudiobookHandler().run(ctx)
    assert (caught.value.kind, caught.value.retryable) == ("bad_params", False)
    assert fragment in caught.value.message


def test_piper_without_its_extra_names_the_extra(
    tmp_path: Path, make_media_ctx: MakeCtx, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "piper", None)  # as if piper-tts were not installed
    piper_engine._load_voice.cache_clear()
    ctx = make_media_ctx(
        books.write_markdown(tmp_path / "book.md"), {"engine": "piper"}, task_type="audiobook"
    )
    try:
        with pytest.raises(HandlerError) as caught:
            AudiobookHandler().run(ctx)
    finally:
        piper_engine._load_voice.cache_clear()
    assert (caught.value.kind, caught.value.retryable) == ("missing_extra", False)
    assert "taskpost[piper]" in caught.value.message


@pytest.mark.parametrize(
    ("name", "content", "kind"),
    [
        ("scan.pdf", b"%PDF-1.4 truncated", "bad_input"),
        ("photo.jpg", b"\xff\xd8\xff\xe0" + b"\x00" * 32, "unsupported_format"),
        ("blank.txt", b"\n\n", "no_text"),
    ],
)
def test_bad_inputs_fail_the_job_with_their_kind(
    tmp_path: Path, make_media_ctx: MakeCtx, name: str, content: bytes, kind: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(HandlerError) as caught:
        AudiobookHandler().run(make_media_ctx(path, {}, task_type="audiobook"))
    assert (caught.value.kind, caught.value.retryable) == (kind, False)
