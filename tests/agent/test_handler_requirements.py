"""A handler whose extra is not installed is not offered, and the agent says so in one line."""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Callable, Iterable
from importlib.machinery import ModuleSpec
from importlib.metadata import EntryPoint
from typing import Any

import pytest

from taskpost.agent.errors import ConfigError
from taskpost.agent.handlers import ENTRY_POINT_GROUP, MissingExtra, TaskContext, discover_handlers
from taskpost.agent.handlers.requirements import install_hint, missing_requirements
from taskpost.agent.media.whisper import STT_REQUIRES
from taskpost.agent.runner import setup_handlers
from taskpost.agent.settings import AgentSettings

BUILTIN = {
    "noop": "taskpost.agent.handlers.noop:NoopHandler",
    "transcription": "taskpost.agent.handlers.transcription:TranscriptionHandler",
    "ocr": "taskpost.agent.handlers.ocr:OcrHandler",
    "url_audio": "taskpost.agent.handlers.url_audio:UrlAudioHandler",
    "document": "taskpost.agent.handlers.document:DocumentHandler",
    "analyze": "taskpost.agent.handlers.analyze:AnalyzeHandler",
    "describe": "taskpost.agent.handlers.describe:DescribeHandler",
    "webpage": "taskpost.agent.handlers.webpage:WebpageHandler",
    "video_audio": "taskpost.agent.handlers.video_audio:VideoAudioHandler",
    "audiobook": "taskpost.agent.handlers.audiobook:AudiobookHandler",
}


def entry_points(*names: str) -> list[EntryPoint]:
    return [EntryPoint(name=name, value=BUILTIN[name], group=ENTRY_POINT_GROUP) for name in names]


def installed(
    monkeypatch: pytest.MonkeyPatch, *, without: Iterable[str] = (), with_: Iterable[str] = ()
) -> None:
    """Make the handlers see ``without`` as not installed and ``with_`` as installed, whatever
    this machine has: discovery only looks modules up, it does not import them."""
    absent, present = set(without), set(with_)
    real = importlib.util.find_spec

    def find_spec(name: str, package: str | None = None) -> ModuleSpec | None:
        if name in absent:
            return None
        if name in present:
            return ModuleSpec(name, None)
        return real(name, package)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)


def notices(caplog: pytest.LogCaptureFixture, task_type: str) -> list[logging.LogRecord]:
    return [record for record in caplog.records if getattr(record, "task_type", None) == task_type]


def test_document_is_not_offered_without_the_docs_extra(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    installed(monkeypatch, without=["docx", "markdownify"], with_=["pypdfium2"])
    handlers = discover_handlers(eps=entry_points("noop", "document"))
    assert list(handlers) == ["noop"]
    [notice] = notices(caplog, "document")
    assert notice.levelno == logging.INFO and notice.exc_info is None
    assert notice.getMessage() == (
        "handler 'document' not offered: needs taskpost[docs] (missing: docx, markdownify): "
        "pip install 'taskpost[docs]'"
    )


@pytest.mark.anyio
async def test_a_missing_download_extra_is_one_line_without_a_traceback(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The README's install (stt and ocr extras) starts an agent without yt-dlp: url_audio is
    skipped with one notice naming the extra, at discovery and setup both."""
    caplog.set_level(logging.INFO)
    installed(monkeypatch, without=["yt_dlp"], with_=STT_REQUIRES)
    found = discover_handlers(eps=entry_points("noop", "url_audio"))
    settings = AgentSettings(server_url="http://c", api_key="k", _env_file=None)
    ready = await setup_handlers(found, settings)
    assert list(ready) == ["noop"]
    [notice] = notices(caplog, "url_audio")
    assert notice.levelno < logging.ERROR and notice.exc_info is None
    assert notice.getMessage() == (
        "handler 'url_audio' not offered: needs taskpost[download] (missing: yt_dlp): "
        "pip install 'taskpost[download]'"
    )
    assert not [record for record in caplog.records if record.levelno >= logging.ERROR]


def test_asking_for_a_type_whose_extra_is_missing_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    installed(monkeypatch, without=["rapidocr"], with_=["onnxruntime", "pypdfium2", "PIL"])
    with pytest.raises(ConfigError, match=r"ocr: needs taskpost\[ocr\] \(missing: rapidocr\)"):
        discover_handlers(["noop", "ocr"], eps=entry_points("noop", "ocr"))


@pytest.mark.parametrize("name", sorted(BUILTIN))
def test_every_builtin_handler_declares_the_extra_it_needs(
    monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    [point] = entry_points(name)
    factory = point.load()
    requires: dict[str, str] = getattr(factory, "requires", {})
    if name == "noop":
        assert requires == {}
        return
    assert requires, f"{name} declares no requirements"
    installed(monkeypatch, without=requires)
    assert set(missing_requirements(factory)) == set(requires.values())
    assert all(requirement.startswith("taskpost[") for requirement in requires.values())


def test_the_hint_folds_taskposts_extras_into_one_requirement() -> None:
    hint = install_hint({"taskpost[stt]": ["faster_whisper"], "taskpost[download]": ["yt_dlp"]})
    assert hint == (
        "needs taskpost[download,stt] (missing: faster_whisper, yt_dlp): pip install 'taskpost[download,stt]'"
    )
    other = install_hint({"taskpost[ocr]": ["rapidocr"], "my-ocr[tesseract]": ["pytesseract"]})
    assert other == (
        "needs taskpost[ocr] and my-ocr[tesseract] (missing: rapidocr, pytesseract): "
        "pip install 'taskpost[ocr]' 'my-ocr[tesseract]'"
    )


class NeedsStt:
    task_type = "needs_stt"

    def setup(self, settings: AgentSettings) -> None:
        raise MissingExtra("stt", package="faster-whisper")

    def run(self, ctx: TaskContext) -> Any:
        raise AssertionError("never run")


class Broken:
    task_type = "broken"

    def setup(self, settings: AgentSettings) -> None:
        raise RuntimeError("a bug in the handler")

    def run(self, ctx: TaskContext) -> Any:
        raise AssertionError("never run")


@pytest.mark.anyio
async def test_setup_failures_a_missing_extra_is_a_notice_and_a_bug_keeps_its_traceback(
    caplog: pytest.LogCaptureFixture, make_settings: Callable[..., AgentSettings]
) -> None:
    ready = await setup_handlers({"needs_stt": NeedsStt(), "broken": Broken()}, make_settings())
    assert ready == {}
    [missing] = notices(caplog, "needs_stt")
    assert missing.levelno == logging.WARNING and missing.exc_info is None
    assert "install taskpost[stt]" in missing.getMessage()
    [bug] = notices(caplog, "broken")
    assert bug.levelno == logging.ERROR and bug.exc_info is not None
