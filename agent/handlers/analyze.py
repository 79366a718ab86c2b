"""``analyze``: named prompts run over a text by an OpenAI-compatible chat model.

Params (``AnalyzeParams``): ``prompts`` (``{"summary": "Provide a brief summary", ...}``, or a
list of such maps: batch mode; a ``{"task_name": N, "prompt": P}`` item is read as ``{N: P}``),
``text`` (inline, ``{"input": NAME}``, or by default the job's text input, see
``agent.llm.sources``), ``model``, ``provider`` (a profile), ``max_tokens``, ``temperature``,
``system``.

Result: ``{"tasks": {name: {"answer", "model", "provider", "prompt_tokens", "completion_tokens",
"latency_s", "cost", "calls"}}, "strategy": "single" | "map_reduce", "chunks", "source", "model",
"provider", "totals": {"prompt_tokens", "completion_tokens", "cost", "calls", "latency_s"}}``; in
batch mode ``tasks`` is a list of such maps. Outputs: ``analysis.json`` (the result) and
``analysis.md``.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

from pydantic import ValidationError

from taskpost.agent.handlers.base import HandlerError, TaskContext
from taskpost.agent.handlers.params import AnalyzeParams, Params
from taskpost.agent.llm.analysis import Analyzer, CallOptions, TaskAnswer
from taskpost.agent.llm.client import Cancelled
from taskpost.agent.llm.runtime import LlmHandler
from taskpost.agent.llm.sources import job_text
from taskpost.agent.workdir import write_private_text

PromptSet = dict[str, str]


class AnalyzeHandler(LlmHandler):
    """Answers named prompts about a text, splitting texts longer than the model's context."""

    task_type = "analyze"
    params_model: ClassVar[type[Params]] = AnalyzeParams

    def run(self, ctx: TaskContext) -> dict[str, Any]:
        params = parse_params(ctx.params)
        batch = prompt_sets(params.prompts)
        text, origin = job_text(ctx, params.text)
        provider = self.provider(provider=params.provider, model=params.model)
        options = CallOptions(params.max_tokens, params.temperature, params.system)
        done = 0
        total = 0

        def before_call(name: str) -> None:
            nonlocal done, total
            if ctx.is_cancelled():
                raise Cancelled
            total = max(total, done + 1)  # combining in groups adds requests
            ctx.heartbeat(done / max(total, 1), f"{name}: request {done + 1} of {total}")
            done += 1

        with self.client(ctx, provider) as client:
            analyzer = Analyzer(client, options, before_call=before_call)
            chunks = analyzer.chunks(text, [prompt for prompts in batch for prompt in prompts.values()])
            calls_per_task = 1 if len(chunks) == 1 else len(chunks) + 1
            total = calls_per_task * sum(len(prompts) for prompts in batch)
            try:
                answers = [
                    {name: analyzer.answer(name, prompt, chunks) for name, prompt in prompts.items()}
                    for prompts in batch
                ]
            except Cancelled:
                return {"cancelled": True}
        result = summary(answers, batch=isinstance(params.prompts, list), chunks=len(chunks), source=origin)
        result["provider"], result["model"] = provider.name, provider.model
        write_outputs(ctx, result)
        ctx.heartbeat(1.0, "done")
        return result


def parse_params(raw: dict[str, Any]) -> AnalyzeParams:
    try:
        return AnalyzeParams.model_validate(raw)
    except ValidationError as exc:
        raise HandlerError(f"bad params: {exc}", retryable=False, kind="bad_params") from exc


def prompt_sets(prompts: dict[str, str] | list[dict[str, str]]) -> list[PromptSet]:
    """The prompt maps to run (one unless batch mode), each checked non-empty."""
    batch = prompts if isinstance(prompts, list) else [prompts]
    sets = [_seed_item(item) for item in batch]
    if not sets or any(not item for item in sets):
        raise HandlerError("prompts: give at least one named prompt", retryable=False, kind="bad_params")
    for item in sets:
        for name, prompt in item.items():
            if not name.strip() or not prompt.strip():
                raise HandlerError(
                    f"prompts: {name!r} has an empty name or prompt", retryable=False, kind="bad_params"
                )
    return sets


def _seed_item(item: dict[str, str]) -> PromptSet:
    """The seed's batch item ``{"task_name": N, "prompt": P}`` as ``{N: P}``."""
    if set(item) == {"task_name", "prompt"}:
        return {item["task_name"]: item["prompt"]}
    return item


def summary(answers: list[dict[str, TaskAnswer]], *, batch: bool, chunks: int, source: str) -> dict[str, Any]:
    tasks = [{name: answer.to_json() for name, answer in prompts.items()} for prompts in answers]
    every = [task for prompts in tasks for task in prompts.values()]
    costs = [task["cost"] for task in every]
    totals = {
        "prompt_tokens": sum(task["prompt_tokens"] or 0 for task in every),
        "completion_tokens": sum(task["completion_tokens"] or 0 for task in every),
        "cost": None if None in costs else round(sum(costs), 8),
        "calls": sum(task["calls"] for task in every),
        "latency_s": round(sum(task["latency_s"] for task in every), 3),
    }
    return {
        "tasks": tasks if batch else tasks[0],
        "strategy": "single" if chunks == 1 else "map_reduce",
        "chunks": chunks,
        "source": source,
        "totals": totals,
    }


def write_outputs(ctx: TaskContext, result: dict[str, Any]) -> None:
    write_private_text(ctx.output_dir / "analysis.json", json.dumps(result, ensure_ascii=False, indent=2))
    sets = result["tasks"] if isinstance(result["tasks"], list) else [result["tasks"]]
    lines: list[str] = []
    for index, tasks in enumerate(sets, 1):
        level = "#"
        if len(sets) > 1:
            lines += [f"# Batch {index}", ""]
            level = "##"
        for name, task in tasks.items():
            lines += [f"{level} {name}", "", task["answer"], ""]
    write_private_text(ctx.output_dir / "analysis.md", "\n".join(lines))
