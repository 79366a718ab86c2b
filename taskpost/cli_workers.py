"""``taskpost workers list|drain|undrain``: the registered agents (an admin key)."""

from __future__ import annotations

from typing import Annotated

import typer

from taskpost import render
from taskpost.cli_common import DEFAULT_SERVER_URL, ApiKey, AsJson, ServerUrl, client, examples, fail
from taskpost.client import Client
from taskpost.protocol import WorkerPublic

workers_app = typer.Typer(help="List the agents; drain one, or let it claim again.", no_args_is_help=True)

WorkerArg = Annotated[str, typer.Argument(help="The agent's id, or its name (--name) when one agent has it.")]


def resolve(opened: Client, id_or_name: str) -> str:
    """The id of the agent ``id_or_name`` names: its id, or a name exactly one live agent has."""
    workers = opened.workers(include_gone=True)
    if any(w.id == id_or_name for w in workers):
        return id_or_name
    named = [w for w in workers if w.name == id_or_name]
    live = [w for w in named if w.alive] or named
    if len(live) == 1:
        return live[0].id
    if not live:
        fail(f"no agent has the id or name {id_or_name!r}: `taskpost workers list` shows them")
    fail(f"{len(live)} agents are named {id_or_name!r}: give one's id ({', '.join(w.id for w in live)})")


def _print(worker: WorkerPublic, as_json: bool, verb: str) -> None:
    if as_json:
        typer.echo(render.as_json(worker))
    else:
        typer.echo(f"{verb} agent {worker.name or '-'} ({worker.id}), running {worker.running_tasks}")


@workers_app.command(
    "list", epilog=examples("taskpost workers list", "taskpost workers list --all --json | jq '.[].name'")
)
def workers_list(
    include_gone: Annotated[bool, typer.Option("--all", help="Agents that stopped too.")] = False,
    as_json: AsJson = False,
    server_url: ServerUrl = DEFAULT_SERVER_URL,
    api_key: ApiKey = None,
) -> None:
    """The agents: type, labels, key restrictions, running tasks, last heartbeat, draining."""
    with client(server_url, api_key) as opened:
        workers = opened.workers(include_gone=include_gone)
    if as_json:
        typer.echo(render.as_json(workers))
    else:
        render.show(render.workers_table(workers))


@workers_app.command(
    "drain", epilog=examples("taskpost workers drain gpu-0", "taskpost workers drain <agent id>")
)
def workers_drain(
    worker: WorkerArg,
    as_json: AsJson = False,
    server_url: ServerUrl = DEFAULT_SERVER_URL,
    api_key: ApiKey = None,
) -> None:
    """Let an agent finish what it runs and claim nothing new (before a restart or an upgrade)."""
    with client(server_url, api_key) as opened:
        drained = opened.drain_worker(resolve(opened, worker))
    _print(drained, as_json, "draining")


@workers_app.command("undrain", epilog=examples("taskpost workers undrain gpu-0"))
def workers_undrain(
    worker: WorkerArg,
    as_json: AsJson = False,
    server_url: ServerUrl = DEFAULT_SERVER_URL,
    api_key: ApiKey = None,
) -> None:
    """Let a drained agent claim tasks again."""
    with client(server_url, api_key) as opened:
        resumed = opened.undrain_worker(resolve(opened, worker))
    _print(resumed, as_json, "claiming again:")
