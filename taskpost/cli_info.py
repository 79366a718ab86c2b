"""``taskpost info``: jobs per type, priority and state, and the agents, like ``rq info``;
``--watch`` refreshes it in place (on a terminal) or prints it again (elsewhere) until Ctrl-C."""

from __future__ import annotations

import time
from typing import Annotated

import typer
from rich.console import Console, Group
from rich.live import Live

from taskpost import render
from taskpost.cli_common import DEFAULT_SERVER_URL, ApiKey, AsJson, Namespace, ServerUrl, client, examples
from taskpost.client import Client
from taskpost.protocol import JobState, Stats

_FAILURES = {JobState.FAILED.value, JobState.DEAD.value}

INFO_EPILOG = examples(
    "taskpost info",
    "taskpost info --only-failures --namespace acme",
    "taskpost info --watch 2            (refreshes every 2 s until Ctrl-C)",
    "taskpost info --json | jq .totals",
)


def info(
    namespace: Namespace = None,
    only_failures: Annotated[
        bool, typer.Option("--only-failures", help="Only the queues with jobs that failed or died.")
    ] = False,
    watch: Annotated[
        float | None,
        typer.Option("--watch", "-w", min=0.1, help="Refresh every this many seconds until Ctrl-C."),
    ] = None,
    as_json: AsJson = False,
    server_url: ServerUrl = DEFAULT_SERVER_URL,
    api_key: ApiKey = None,
) -> None:
    """Jobs per type, priority and state (failed ones are "retry scheduled"), and the agents."""
    with client(server_url, api_key) as opened:
        if watch is None:
            _print(opened.stats(namespace), as_json, only_failures)
            return
        try:
            if as_json or not render.is_terminal():
                _print_every(opened, namespace, watch, as_json, only_failures)
            else:
                _live(opened, namespace, watch, only_failures)
        except KeyboardInterrupt:
            pass


def _failures(stats: Stats) -> Stats:
    counts = [c for c in stats.counts if c.state in _FAILURES]
    return stats.model_copy(update={"counts": counts})


def _print(stats: Stats, as_json: bool, only_failures: bool) -> None:
    if as_json:
        typer.echo(render.as_json(_failures(stats) if only_failures else stats))
    else:
        render.show(*render.stats_tables(stats, only_failures=only_failures))


def _print_every(
    opened: Client, namespace: str | None, every_s: float, as_json: bool, only_failures: bool
) -> None:
    """For scripts and pipes: a JSON line (``--json``) or the tables again, each ``every_s``."""
    while True:
        stats = opened.stats(namespace)
        if as_json:
            typer.echo(render.as_json(_failures(stats) if only_failures else stats, indent=None))
        else:
            render.show(*render.stats_tables(stats, only_failures=only_failures))
            typer.echo("")
        time.sleep(every_s)


def _live(opened: Client, namespace: str | None, every_s: float, only_failures: bool) -> None:
    def view() -> Group:
        tables = render.stats_tables(opened.stats(namespace), only_failures=only_failures)
        return Group(*(table.rich() for table in tables))

    with Live(view(), console=Console(), auto_refresh=False) as live:
        while True:
            time.sleep(every_s)
            live.update(view(), refresh=True)
