"""The agent's docs name only commands and flags that exist."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import typer.main

from taskpost.cli import app

REPO = Path(__file__).resolve().parents[2]
DOCS = ("docs/agent.md", "configs/http-worker.env.example")
AGENT_PROGRAMS = (
    "python -m taskpost.agent",
    "python scripts/start_http_remote_worker.py",
    "./scripts/start-http-worker.sh",
    "scripts\\start-http-worker.bat",
)
FLAG = re.compile(r"(?<![\w-])--[a-z][a-z-]*")


def cli() -> Any:
    """The ``taskpost`` command as its CLI library builds it (a group of commands)."""
    return typer.main.get_command(app)


def options(command: Any) -> set[str]:
    return {name for param in command.params for name in (*param.opts, *param.secondary_opts)}


def command_lines(text: str) -> list[tuple[list[str], str]]:
    """Every ``taskpost ...`` or agent program invocation: (its command path, the rest of its line)."""
    found: list[tuple[list[str], str]] = []
    for line in re.sub(r"\\\n\s*", " ", text).splitlines():
        for program in AGENT_PROGRAMS:
            if program in line:
                found.append((["agent"], line.split(program, 1)[1]))
        for match in re.finditer(r"\btaskpost ((?:[a-z]+ ?)+)([^`#|]*)", line):
            words = match.group(1).split()
            found.append((words, " ".join(words) + " " + match.group(2)))
    return found


@pytest.mark.parametrize("doc", DOCS)
def test_every_command_and_flag_in_the_docs_exists(doc: str) -> None:
    text = (REPO / doc).read_text(encoding="utf-8")
    lines = command_lines(text)
    assert lines, f"{doc} names no command"
    for words, rest in lines:
        command = cli()
        for word in words:
            subcommands = getattr(command, "commands", None)
            if subcommands is None:
                break
            sub = subcommands.get(word)
            assert sub is not None, f"{doc}: `taskpost {' '.join(words)}`: no command {word!r}"
            command = sub
        unknown = set(FLAG.findall(rest)) - options(command)
        assert not unknown, f"{doc}: {command.name} has no {sorted(unknown)} ({rest.strip()!r})"


def test_the_flags_named_beside_each_setting_are_agent_flags() -> None:
    agent = options(cli().commands["agent"])
    example = (REPO / "configs/http-worker.env.example").read_text(encoding="utf-8")
    noted = re.findall(r"\((--[a-z-]+)\)", example)
    table = re.findall(r"^\| `(--[a-z-]+)` \|", (REPO / "docs/agent.md").read_text(encoding="utf-8"), re.M)
    assert len(noted) > 10 and len(table) > 10
    assert set(noted) - agent == set() and set(table) - agent == set()
