"""Where an ``analyze`` job's text and a ``describe`` job's image come from.

Text: inline (``text`` is a string), a named input (``{"input": NAME}``; the coordinator rewrites
``{"from_job": ID, "output": NAME}`` to that at submit), or else the job's inputs: a chained job
gets its parent's outputs, so the first of ``TEXT_OUTPUTS`` present, else the only ``.txt``/``.md``.
"""

from __future__ import annotations

from pathlib import Path

from taskpost.agent.handlers.base import HandlerError, TaskContext
from taskpost.agent.handlers.params import JobOutputRef, NamedInput, TextSource
from taskpost.agent.media.filetypes import FileKind, detect_kind, read_text
from taskpost.agent.media.sources import media_input

TEXT_OUTPUTS = ("transcript.txt", "document.md", "page.md", "text.txt")
"""What the transcription, document, webpage and ocr tasks write, in order of preference."""
TEXT_SUFFIXES = (".txt", ".md")


def named_input(ctx: TaskContext, ref: NamedInput | JobOutputRef, param: str) -> Path:
    """The input a ``{"input": NAME}`` param names."""
    if isinstance(ref, JobOutputRef):
        raise HandlerError(
            f"params.{param}.from_job was not resolved by the coordinator (is it older than this agent?)",
            retryable=False,
            kind="bad_params",
        )
    name = ref.input
    if name not in ctx.inputs:
        known = ", ".join(sorted(ctx.inputs)) or "none"
        raise HandlerError(
            f"params.{param}: no input named {name!r} (inputs: {known})", retryable=False, kind="bad_params"
        )
    return ctx.inputs[name]


def job_text(ctx: TaskContext, source: TextSource | None) -> tuple[str, str]:
    """The text to analyse and where it came from (``inline`` or an input's name)."""
    if isinstance(source, str):
        text, origin = source, "inline"
    else:
        path = named_input(ctx, source, "text") if source is not None else _default_text_input(ctx)
        text, origin = _read_text_file(path), path.name
    if not text.strip():
        raise HandlerError(f"the text ({origin}) is empty", retryable=False, kind="no_text")
    return text.strip(), origin


def _default_text_input(ctx: TaskContext) -> Path:
    for name in TEXT_OUTPUTS:
        if name in ctx.inputs:
            return ctx.inputs[name]
    texts = [path for name, path in ctx.inputs.items() if name.lower().endswith(TEXT_SUFFIXES)]
    if len(texts) == 1:
        return texts[0]
    if not ctx.inputs or not texts:
        raise HandlerError(
            "no text: give params.text, upload a .txt or .md file, "
            "or chain this job after one that writes text",
            retryable=False,
            kind="no_text",
        )
    raise HandlerError(
        f"{len(texts)} text inputs: name one with params.text = {{'input': NAME}}",
        retryable=False,
        kind="bad_params",
    )


def _read_text_file(path: Path) -> str:
    kind = detect_kind(path)
    if kind not in (FileKind.TEXT, FileKind.HTML):
        found = kind or "binary"
        raise HandlerError(
            f"{path.name} is not text (found: {found}): run the document or ocr task on it first",
            retryable=False,
            kind="unsupported_input",
        )
    return read_text(path)


def job_image(ctx: TaskContext, image: NamedInput | JobOutputRef | None) -> Path:
    """The image to describe: ``image`` (an input), else ``local_path``/``input``/the only input."""
    if image is not None:
        return named_input(ctx, image, "image")
    return media_input(ctx)
