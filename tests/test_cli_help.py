"""Every ``taskpost`` command: its ``--help`` shows an example, each one that talks to a coordinator
takes ``--json``, ``--server-url`` and ``--api-key`` and is run by tests/e2e/test_cli_commands.py,
and docs/cli.md names only commands and flags that exist, and every command."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer.main
from typer.testing import CliRunner

from taskpost.cli import app
from tests.agent.test_agent_docs import FLAG, command_lines, options
from tests.e2e.test_cli_commands import COMMANDS

REPO = Path(__file__).resolve().parents[1]

LOCAL = {
    "server": "tests/e2e/conftest.py",
    "agent": "tests/e2e/conftest.py",
    "demo": "tests/e2e/test_demo.py",
    "db upgrade": "tests/server/test_cli_db.py",
    "db current": "tests/server/test_cli_db.py",
}
"""Commands that run a process or open the database, not ask a coordinator: the tests that run them."""


def _leaves(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[str, Any]]:
    subcommands = getattr(command, "commands", None)
    if subcommands is None:
        yield " ".join(path), command
        return
    for name, sub in subcommands.items():
        yield from _leaves(sub, (*path, name))


LEAVES = dict(_leaves(typer.main.get_command(app)))


def test_every_command_is_tested_against_a_coordinator_or_named_here() -> None:
    assert set(LEAVES) == COMMANDS | set(LOCAL), "a command no test runs, or one that is gone"
    assert not COMMANDS & set(LOCAL)
    for name, test_file in LOCAL.items():
        assert name.split()[-1] in (REPO / test_file).read_text(encoding="utf-8")


@pytest.mark.parametrize("name", sorted(LEAVES))
def test_every_commands_help_has_an_example(name: str) -> None:
    result = CliRunner().invoke(app, [*name.split(), "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "Examples:" in result.output
    assert f"taskpost {name}" in result.output


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_that_asks_a_coordinator_takes_json_url_and_key(name: str) -> None:
    assert {"--json", "--server-url", "--api-key"} <= options(LEAVES[name])


def _command(words: list[str]) -> Any:
    command: Any = typer.main.get_command(app)
    for word in words:
        subcommands = getattr(command, "commands", None)
        if subcommands is None:
            break
        command = subcommands.get(word)
        assert command is not None, f"docs/cli.md: `taskpost {' '.join(words)}`: no command {word!r}"
    return command


def test_the_cli_doc_shows_every_command_with_flags_that_exist() -> None:
    lines = command_lines((REPO / "docs" / "cli.md").read_text(encoding="utf-8"))
    shown: set[str] = set()
    for words, rest in lines:
        command = _command(words)
        unknown = set(FLAG.findall(rest)) - options(command)
        assert not unknown, f"docs/cli.md: {command.name} has no {sorted(unknown)} ({rest.strip()!r})"
        shown.update(name for name in LEAVES if words[: len(name.split())] == name.split())
    assert shown == set(LEAVES), f"docs/cli.md does not show {sorted(set(LEAVES) - shown)}"
