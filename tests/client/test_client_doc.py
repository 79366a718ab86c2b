"""docs/client.md shows calls that exist: every ``client.<method>(...)`` of its Python examples is a
method of both ``Client`` and ``AsyncClient`` taking the keywords shown, and every name it
imports from ``taskpost`` is there; it and the README name only ``taskpost`` commands and flags
that exist."""

from __future__ import annotations

import ast
import importlib
import inspect
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from taskpost.client import AsyncClient, Client, job_spec
from tests.agent.test_agent_docs import FLAG, cli, command_lines, options

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "client.md"


def _examples() -> Iterator[ast.Module]:
    for block in re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.DOTALL):
        flags = ast.PyCF_ONLY_AST | ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
        yield compile(block, str(DOC), "exec", flags=flags)


def _calls(module: ast.Module) -> Iterator[ast.Call]:
    yield from (node for node in ast.walk(module) if isinstance(node, ast.Call))


def _accepts(function: Callable[..., Any], keywords: list[str]) -> list[str]:
    params = inspect.signature(function).parameters
    return [name for name in keywords if name not in params]


def test_every_client_call_in_the_doc_exists_with_its_keywords() -> None:
    checked: set[str] = set()
    for module in _examples():
        for call in _calls(module):
            keywords = [k.arg for k in call.keywords if k.arg is not None]
            func = call.func
            if (
                isinstance(func, ast.Attribute)
                and isinstance(func.value, ast.Name)
                and func.value.id == "client"
            ):
                for cls in (Client, AsyncClient):
                    method = getattr(cls, func.attr, None)
                    assert method is not None, f"docs/client.md calls {cls.__name__}.{func.attr}"
                    assert not _accepts(method, keywords), f"{cls.__name__}.{func.attr}: {keywords}"
                checked.add(func.attr)
            elif isinstance(func, ast.Name) and func.id == "job_spec":
                assert not _accepts(job_spec, keywords)
    assert {"submit", "get", "wait", "result", "stats", "cancel", "submit_many", "list"} <= checked
    operators = {"requeue_jobs", "empty_queue", "drain_worker", "undrain_worker", "create_key", "rotate_key"}
    assert operators <= checked


def test_every_name_the_doc_imports_exists() -> None:
    imported = 0
    for module in _examples():
        for node in ast.walk(module):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("taskpost"):
                source = importlib.import_module(node.module)
                for alias in node.names:
                    assert hasattr(source, alias.name), f"{node.module}.{alias.name}"
                    imported += 1
    assert imported >= 5


@pytest.mark.parametrize("doc", ["README.md", "docs/client.md"])
def test_every_taskpost_command_and_flag_in_the_doc_exists(doc: str) -> None:
    lines = command_lines((REPO / doc).read_text(encoding="utf-8"))
    assert any(words[:1] == ["submit"] for words, _ in lines), f"{doc} shows no taskpost submit"
    for words, rest in lines:
        command = cli()
        for word in words:
            subcommands = getattr(command, "commands", None)
            if subcommands is None:
                break
            command = subcommands.get(word)
            assert command is not None, f"{doc}: `taskpost {' '.join(words)}`: no command {word!r}"
        unknown = set(FLAG.findall(rest)) - options(command)
        assert not unknown, f"{doc}: {command.name} has no {sorted(unknown)} ({rest.strip()!r})"
