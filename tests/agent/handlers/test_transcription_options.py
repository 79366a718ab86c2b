"""The transcription handler's params, subtitles and device choice: no model, no media extras."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from taskpost.agent.handlers.base import HandlerError
from taskpost.agent.handlers.transcription import Options, to_srt, to_vtt
from taskpost.agent.media.whisper import CPU, CUDA, choose_device
from taskpost.protocol import WorkerType


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"beam_size": 0}, "beam_size must be an integer from 1"),
        ({"beam_size": "5"}, "beam_size must be an integer"),
        ({"beam_size": True}, "beam_size must be an integer"),
        ({"vad_filter": "yes"}, "vad_filter must be true or false"),
        ({"lexicon": "station"}, "lexicon must be a list of words"),
        ({"language": 7}, "language must be a language code"),
        ({"model": 3}, "model must be a name or a directory"),
        ({"initial_prompt": ["x"]}, "initial_prompt must be text"),
    ],
)
def test_bad_params_are_not_retried(params: dict[str, Any], message: str) -> None:
    with pytest.raises(HandlerError, match=message) as info:
        Options.parse(params)
    assert info.value.retryable is False and info.value.kind == "bad_params"


def test_default_model_follows_the_language() -> None:
    assert Options.parse({}).model == "base" and Options.parse({}).language is None
    assert Options.parse({"language": "auto"}).language is None
    assert Options.parse({"language": "EN"}).model == "tiny.en"
    assert Options.parse({"language": "de"}).model == "base"
    assert Options.parse({"lexicon": ["Taskpost", " ", "CTranslate2"]}).hotwords == "Taskpost, CTranslate2"


def test_subtitle_timestamps() -> None:
    segments = [
        {"start": 0.0, "end": 1.5, "text": "one"},
        {"start": 3661.25, "end": 3662.0005, "text": "two"},
    ]
    assert to_srt(segments) == (
        "1\n00:00:00,000 --> 00:00:01,500\none\n\n2\n01:01:01,250 --> 01:01:02,000\ntwo\n"
    )
    assert to_vtt(segments) == (
        "WEBVTT\n\n00:00:00.000 --> 00:00:01.500\none\n\n01:01:01.250 --> 01:01:02.000\ntwo\n"
    )


def test_cpu_agents_and_forced_cpu_transcribe_on_the_cpu() -> None:
    assert choose_device(WorkerType.CPU, force_cpu=False) == CPU
    assert choose_device(WorkerType.GPU, force_cpu=True) == CPU


def test_a_gpu_agent_uses_cuda_when_it_has_a_device(caplog: pytest.LogCaptureFixture) -> None:
    ctranslate2 = pytest.importorskip("ctranslate2", reason="needs taskpost[stt]")
    has_cuda = ctranslate2.get_cuda_device_count() > 0
    with caplog.at_level(logging.WARNING):
        assert choose_device(WorkerType.GPU, force_cpu=False) == (CUDA if has_cuda else CPU)
    assert has_cuda or "without a usable CUDA device" in caplog.text
