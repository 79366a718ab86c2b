"""What every ``taskpost`` command that talks to a coordinator shares: its options (``--server-url``,
``--api-key``, ``--json``), the client it opens and how errors end the command."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from taskpost.client import Client, TaskpostError

DEFAULT_SERVER_URL = "http://127.0.0.1:8000"
CLI_RETRIES = 2
"""Fewer than a program's: a person waits at the terminal for a coordinator that is down."""

ServerUrl = Annotated[str, typer.Option(envvar="TASKPOST_SERVER_URL", help="The coordinator's URL.")]
ApiKey = Annotated[
    str | None,
    typer.Option(envvar="TASKPOST_API_KEY", help="API key (prefer the environment variable to the flag)."),
]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON (for scripts).")]
Yes = Annotated[bool, typer.Option("--yes", "-y", help="Do it without asking first.")]
Namespace = Annotated[
    str | None, typer.Option(help="Admin keys: only this namespace (default: every namespace).")
]
DataDir = Annotated[Path | None, typer.Option(help="Data directory (TASKPOST_DATA_DIR).")]
DatabaseUrl = Annotated[str | None, typer.Option(help="Database URL (TASKPOST_DATABASE_URL).")]


def settings(data_dir: Path | None, database_url: str | None, **options: Any) -> Any:
    """The coordinator's settings: environment and .env, with the options given on the command line."""
    from taskpost.server.settings import Settings

    overrides = {"data_dir": data_dir, "database_url": database_url, **options}
    return Settings(**{name: value for name, value in overrides.items() if value is not None})


def examples(*lines: str) -> str:
    """A command's epilog: ``Examples:`` and one command a paragraph (typer joins single lines)."""
    return "Examples:\n\n" + "\n\n".join(f"  {line}" for line in lines)


def fail(error: Exception | str) -> NoReturn:
    typer.secho(f"error: {error}", fg=typer.colors.RED, err=True)
    raise typer.Exit(1)


def note(line: str) -> None:
    """A line for the person at the terminal (stderr), never part of what scripts parse."""
    typer.secho(line, err=True)


def refused(error: TaskpostError) -> str:
    status = f", HTTP {error.status}" if error.status else ""
    return f"{error.message} ({error.code}{status})"


@contextmanager
def client(server_url: str, api_key: str | None) -> Iterator[Client]:
    """A client of the coordinator; any error it raises is printed and ends the command."""
    if not api_key:
        fail(f"no API key for {server_url}: give --api-key or set TASKPOST_API_KEY")
    try:
        with Client(server_url, api_key, retries=CLI_RETRIES) as opened:
            yield opened
    except TaskpostError as exc:
        fail(refused(exc))


def confirm(question: str, yes: bool) -> None:
    """Ask ``question`` unless ``--yes``; a no ends the command with status 1."""
    if not yes and not typer.confirm(question, err=True):
        note("aborted: nothing changed")
        raise typer.Exit(1)
