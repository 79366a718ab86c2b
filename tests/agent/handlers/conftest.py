"""Fixtures of the media handler tests: generated speech and a shared transcription handler."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from taskpost.agent.handlers.base import CancelReason, TaskContext
from tests.media_fixtures import speech


class RecordingContext(TaskContext):
    """A TaskContext that keeps every progress report, and can cancel itself after a few."""

    cancel_after: int | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        self.reports: list[tuple[float | None, str | None]] = []

    def heartbeat(self, progress: float | None = None, message: str | None = None) -> None:
        super().heartbeat(progress, message)
        self.reports.append((progress, message))
        done = sum(1 for p, _ in self.reports if p is not None and p > 0)
        if self.cancel_after is not None and done >= self.cancel_after:
            self.cancel(CancelReason.CANCEL_REQUESTED)


@pytest.fixture(scope="session")
def speech_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Generated speech: english.wav/.mp3/.mp4, german.wav, long.wav (~40 s), silent.mp4."""
    if missing := speech.missing_tools():
        pytest.skip(f"needs {', '.join(missing)} to generate test speech")
    folder = tmp_path_factory.mktemp("speech")
    wav = speech.speak(speech.ENGLISH_TEXT, folder / "english.wav")
    speech.to_mp3(wav, folder / "english.mp3")
    speech.to_mp4(wav, folder / "english.mp4")
    speech.speak(speech.GERMAN_TEXT, folder / "german.wav", voice="de", words_per_minute=175)
    speech.long_speech(folder / "long.wav")
    speech.silent_video(folder / "silent.mp4")
    return folder


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the handler assembles the multilingual model: once per test session."""
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def transcriber(models_dir: Path) -> Any:
    """One TranscriptionHandler for the session, so each model loads once, as in an agent."""
    pytest.importorskip("faster_whisper", reason="needs taskpost[stt]")
    from taskpost.agent.handlers.transcription import TranscriptionHandler

    return TranscriptionHandler(models_dir=models_dir)


@pytest.fixture
def make_media_ctx(tmp_path: Path) -> Callable[..., RecordingContext]:
    """Builds a RecordingContext whose single input is a copy of ``media``."""
    count = 0

    def make(
        media: Path | None = None, params: dict[str, Any] | None = None, *, task_type: str = "transcription"
    ) -> RecordingContext:
        nonlocal count
        count += 1
        work = tmp_path / f"task-{count}"
        inputs: dict[str, Path] = {}
        if media is not None:
            (work / "inputs").mkdir(parents=True)
            inputs[media.name] = Path(shutil.copy(media, work / "inputs" / media.name))
        return RecordingContext(
            job_id=f"job-{count}",
            task_type=task_type,
            attempt=1,
            params=params or {},
            inputs=inputs,
            work_dir=work,
        )

    return make
