"""``analyze`` against a fake OpenAI-compatible server on 127.0.0.1: prompts, map-reduce within the
context budget, batch mode, cost, where the text comes from, and that the key shows nowhere."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from taskpost.agent.handlers.analyze import AnalyzeHandler
from taskpost.agent.handlers.base import HandlerError
from taskpost.agent.llm.analysis import combine_prompt, single_prompt
from taskpost.agent.llm.chunking import estimate_tokens
from taskpost.agent.settings import AgentSettings
from tests.agent.handlers.conftest import RecordingContext
from tests.support.fake_llm import FakeLlm, expected_answer, fake_llm

pytest.importorskip("openai", reason="needs taskpost[llm]")

KEY = "sk-analyze-secret-4f1c9e0b77"
PROMPTS = {"summary": "Provide a brief summary", "key_points": "Extract key points"}
PROFILES = """
[small]
model = "small-model"
context_tokens = 1024
prices = { prompt = 1.5, completion = 6.0 }
"""
SENTENCE = "The keeper climbed the stairs of the lighthouse at dusk and lit the great lamp. "


@pytest.fixture
def llm() -> Iterator[FakeLlm]:
    with fake_llm() as server:
        yield server


@pytest.fixture
def handler(llm: FakeLlm, make_settings: Callable[..., AgentSettings], tmp_path: Path) -> AnalyzeHandler:
    profiles = tmp_path / "llm.toml"
    profiles.write_text(PROFILES)
    settings: AgentSettings = make_settings(
        llm_base_url=llm.base_url, llm_api_key=KEY, llm_model="big-model", llm_profiles_file=profiles
    )
    handler = AnalyzeHandler()
    handler.backoff_base_s = 0.01
    handler.setup(settings)
    return handler


@pytest.fixture
def make_ctx(tmp_path: Path) -> Callable[..., RecordingContext]:
    def make(params: dict[str, Any], files: dict[str, str | bytes] | None = None) -> RecordingContext:
        work = tmp_path / f"task-{len(list(tmp_path.glob('task-*')))}"
        (work / "inputs").mkdir(parents=True)
        inputs: dict[str, Path] = {}
        for name, content in (files or {}).items():
            path = work / "inputs" / name
            path.write_bytes(content if isinstance(content, bytes) else content.encode())
            inputs[name] = path
        return RecordingContext(
            job_id="job-1", task_type="analyze", attempt=1, params=params, inputs=inputs, work_dir=work
        )

    return make


def _refusal(handler: AnalyzeHandler, ctx: RecordingContext) -> HandlerError:
    with pytest.raises(HandlerError) as caught:
        handler.run(ctx)
    assert caught.value.retryable is False
    return caught.value


def test_named_prompts_over_an_inline_text(
    handler: AnalyzeHandler, llm: FakeLlm, make_ctx: Callable[..., RecordingContext]
) -> None:
    text = "Alice met Bob at noon. They agreed to ship on Friday."
    ctx = make_ctx({"prompts": PROMPTS, "text": text, "system": "You are terse.", "max_tokens": 100})
    result = handler.run(ctx)

    assert [request.body for request in llm.requests] == [
        {
            "model": "big-model",
            "messages": [
                {"role": "system", "content": "You are terse."},
                {"role": "user", "content": single_prompt(prompt, text)},
            ],
            "max_tokens": 100,
            "temperature": 0.0,
        }
        for prompt in PROMPTS.values()
    ]
    assert (result["strategy"], result["chunks"], result["source"]) == ("single", 1, "inline")
    assert (result["provider"], result["model"]) == ("default", "big-model")
    summary = result["tasks"]["summary"]
    assert summary["answer"] == expected_answer(single_prompt(PROMPTS["summary"], text))
    assert summary["prompt_tokens"] == len(
        f"You are terse. {single_prompt(PROMPTS['summary'], text)}".split()
    )
    assert (summary["completion_tokens"], summary["cost"], summary["calls"]) == (1, None, 1)
    assert result["totals"]["calls"] == 2
    assert json.loads((ctx.output_dir / "analysis.json").read_text()) == result
    markdown = (ctx.output_dir / "analysis.md").read_text()
    assert markdown.startswith(f"# summary\n\n{summary['answer']}\n\n# key_points\n\n")
    assert [report for report in ctx.reports if report[0] is not None][-1] == (1.0, "done")


def test_a_long_text_is_mapped_in_chunks_under_the_context_then_combined(
    handler: AnalyzeHandler, llm: FakeLlm, make_ctx: Callable[..., RecordingContext]
) -> None:
    paragraphs = [f"Paragraph {index}. " + SENTENCE * 5 for index in range(30)]
    text = "\n\n".join(paragraphs)
    ctx = make_ctx({"prompts": PROMPTS, "text": text, "provider": "small", "max_tokens": 64})
    result = handler.run(ctx)

    chunks = result["chunks"]
    assert result["strategy"] == "map_reduce" and chunks >= 3
    assert len(llm.requests) == 2 * (chunks + 1)
    for request in llm.requests:
        assert request.body["model"] == "small-model" and request.body["max_tokens"] == 64
        assert estimate_tokens(request.text()) + 64 <= 1024
    maps = llm.requests[:chunks]
    assert " ".join(request.text().split("---\n\n", 1)[1] for request in maps).split() == text.split()
    assert all(
        "Paragraph" in request.text().split("---\n\n", 1)[1][:12] for request in maps
    )  # whole paragraphs
    answers = [expected_answer(request.text()) for request in maps]
    combine = combine_prompt(PROMPTS["summary"], answers)
    assert llm.requests[chunks].text() == combine
    summary = result["tasks"]["summary"]
    assert summary["answer"] == expected_answer(combine)
    assert summary["calls"] == chunks + 1
    prompt_tokens = sum(len(request.text().split()) for request in llm.requests[: chunks + 1])
    assert summary["prompt_tokens"] == prompt_tokens
    assert summary["cost"] == round((prompt_tokens * 1.5 + (chunks + 1) * 6.0) / 1e6, 8)
    assert result["totals"]["cost"] == round(summary["cost"] + result["tasks"]["key_points"]["cost"], 8)
    progress = [report for report in ctx.reports if report[0] is not None]
    assert len(progress) == len(llm.requests) + 1
    assert progress[1] == (1 / len(llm.requests), f"summary: request 2 of {len(llm.requests)}")


def test_batch_mode_gives_one_task_map_per_prompt_set(
    handler: AnalyzeHandler, llm: FakeLlm, make_ctx: Callable[..., RecordingContext]
) -> None:
    batch = [{"summary": "Summarise"}, {"task_name": "Action Items", "prompt": "List action items"}]
    ctx = make_ctx({"prompts": batch, "text": "We will paint the fence on Monday."})
    result = handler.run(ctx)
    assert [list(tasks) for tasks in result["tasks"]] == [["summary"], ["Action Items"]]
    assert len(llm.requests) == 2
    assert llm.requests[1].text().startswith("List action items\n\n---")
    assert (ctx.output_dir / "analysis.md").read_text().startswith("# Batch 1\n\n## summary\n\n")


def test_the_text_comes_from_a_named_input_or_the_preferred_chained_output(
    handler: AnalyzeHandler, llm: FakeLlm, make_ctx: Callable[..., RecordingContext]
) -> None:
    files: dict[str, str | bytes] = {"notes.md": "Notes text.", "transcript.txt": "Transcript text."}
    assert handler.run(make_ctx({"prompts": {"s": "S"}}, files))["source"] == "transcript.txt"
    assert llm.requests[-1].text().endswith("Transcript text.")
    named = handler.run(make_ctx({"prompts": {"s": "S"}, "text": {"input": "notes.md"}}, files))
    assert named["source"] == "notes.md" and llm.requests[-1].text().endswith("Notes text.")
    only = handler.run(make_ctx({"prompts": {"s": "S"}}, {"audio.wav": b"RIFF", "minutes.txt": "Minutes."}))
    assert only["source"] == "minutes.txt"


@pytest.mark.parametrize(
    ("params", "files", "kind"),
    [
        ({"prompts": {"s": "S"}}, {}, "no_text"),
        ({"prompts": {"s": "S"}}, {"speech.wav": b"RIFF\x00\x00"}, "no_text"),
        ({"prompts": {"s": "S"}, "text": "   "}, {}, "no_text"),
        ({"prompts": {"s": "S"}}, {"a.md": "A", "b.md": "B"}, "bad_params"),
        (
            {"prompts": {"s": "S"}, "text": {"input": "scan.png"}},
            {"scan.png": b"\x89PNG\r\n\x1a\n\x00"},
            "unsupported_input",
        ),
        ({"prompts": {"s": "S"}, "text": {"input": "missing.txt"}}, {}, "bad_params"),
        ({"prompts": {"s": "S"}, "text": {"from_job": "j", "output": "transcript.txt"}}, {}, "bad_params"),
        ({"prompts": {}, "text": "t"}, {}, "bad_params"),
        ({"prompts": {"s": " "}, "text": "t"}, {}, "bad_params"),
        ({"prompts": {"s": "S"}, "text": "t", "colour": "red"}, {}, "bad_params"),
        ({"prompts": {"s": "S"}, "text": "t", "provider": "nope"}, {}, "bad_params"),
        ({"prompts": {"s": "S" * 4000}, "text": "t " * 4000, "provider": "small"}, {}, "bad_params"),
    ],
)
def test_bad_inputs_fail_without_calling_the_model(
    handler: AnalyzeHandler,
    llm: FakeLlm,
    make_ctx: Callable[..., RecordingContext],
    params: dict[str, Any],
    files: dict[str, str | bytes],
    kind: str,
) -> None:
    assert _refusal(handler, make_ctx(params, files)).kind == kind
    assert llm.requests == []


def test_the_api_key_is_sent_but_never_in_the_result_outputs_or_logs(
    handler: AnalyzeHandler,
    llm: FakeLlm,
    make_ctx: Callable[..., RecordingContext],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    llm.script += [(429, {"retry-after": "0"}, None), (401, {}, None)]
    ctx = make_ctx({"prompts": PROMPTS, "text": "A short text."})
    error = _refusal(handler, ctx)
    assert error.kind == "llm_auth" and "TASKPOST_LLM_API_KEY" in error.message
    result = handler.run(make_ctx({"prompts": PROMPTS, "text": "A short text."}))
    assert llm.requests[0].headers["authorization"] == f"Bearer {KEY}"
    assert "retry 1 of 3" in caplog.text
    for seen in [caplog.text, json.dumps(result), error.message, repr(handler.__dict__)]:
        assert KEY not in seen
    assert all(KEY not in path.read_text() for path in ctx.work_dir.rglob("*") if path.is_file())


def test_a_cancelled_task_stops_between_calls(
    handler: AnalyzeHandler, llm: FakeLlm, make_ctx: Callable[..., RecordingContext]
) -> None:
    ctx = make_ctx({"prompts": {f"p{index}": "Summarise" for index in range(5)}, "text": "Some text."})
    ctx.cancel_after = 1
    assert handler.run(ctx) == {"cancelled": True}
    assert len(llm.requests) == 2
