"""``taskpost``: run the coordinator or an agent; the commands that talk to one live beside this
module (``cli_jobs``, ``cli_workers``, ``cli_keys``, ``cli_info``).

Every command that talks to a coordinator goes through ``taskpost.client`` over HTTP; only
``taskpost db`` and ``taskpost keys create --local`` (an admin key when none is at hand) open
the database directly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from taskpost import render
from taskpost.agent.cli import agent_command
from taskpost.cli_common import (
    DEFAULT_SERVER_URL,
    ApiKey,
    AsJson,
    DatabaseUrl,
    DataDir,
    ServerUrl,
    client,
    examples,
    fail,
    note,
    settings,
)
from taskpost.cli_info import INFO_EPILOG, info
from taskpost.cli_jobs import SUBMIT_EPILOG, jobs_app, submit
from taskpost.cli_keys import keys_app
from taskpost.cli_workers import workers_app
from taskpost.client import TaskpostError
from taskpost.errors import CliError
from taskpost.protocol.admin import FinishedState, PurgeResult
from taskpost.protocol.logs import LogFormat

app = typer.Typer(help="Taskpost: a job system for media work over HTTP, no Redis.", no_args_is_help=True)
app.add_typer(jobs_app, name="jobs")
app.add_typer(workers_app, name="workers")
app.add_typer(keys_app, name="keys")
db_app = typer.Typer(
    help="Migrate the coordinator's database (TASKPOST_DATABASE_URL) to this version's tables.",
    no_args_is_help=True,
)
app.add_typer(db_app, name="db")
app.command(
    "agent",
    help="Run a worker agent that claims and runs tasks.",
    epilog=examples(
        "taskpost agent --server-url http://coordinator:8000 --api-key-file worker.key",
        "taskpost agent --task-type transcription --worker-type gpu --name gpu-0 --health-port 0",
    ),
)(agent_command)
app.command("info", epilog=INFO_EPILOG)(info)
app.command("submit", help="Submit a job (the same as `taskpost jobs submit`).", epilog=SUBMIT_EPILOG)(submit)


@app.command(
    epilog=examples(
        "taskpost server                                 (SQLite under ./data, on 127.0.0.1:8000)",
        "taskpost server --host 0.0.0.0 --port 8000 --data-dir /var/lib/taskpost",
        "TASKPOST_DATABASE_URL=postgresql://user:secret@db/taskpost taskpost server",
        "taskpost server --with-agent --max-concurrent 2    (and an agent, in one process)",
    ),
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
)
def server(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
    log_level: Annotated[
        str | None, typer.Option(help="DEBUG, INFO, WARNING... (TASKPOST_LOG_LEVEL, default INFO).")
    ] = None,
    log_format: Annotated[
        LogFormat | None, typer.Option(help="text or json (TASKPOST_LOG_FORMAT, default text).")
    ] = None,
    ssl_certfile: Annotated[
        Path | None, typer.Option(help="Serve HTTPS with this PEM certificate (TASKPOST_SSL_CERTFILE).")
    ] = None,
    ssl_keyfile: Annotated[
        Path | None, typer.Option(help="The certificate's private key, PEM (TASKPOST_SSL_KEYFILE).")
    ] = None,
    forwarded_allow_ips: Annotated[
        str | None,
        typer.Option(help="Proxies whose X-Forwarded-For is trusted (TASKPOST_FORWARDED_ALLOW_IPS)."),
    ] = None,
    with_agent: Annotated[
        bool,
        typer.Option(
            "--with-agent",
            help="Also run an agent in this process; other flags are `taskpost agent` flags.",
        ),
    ] = False,
) -> None:
    """Run the coordinator (SQLite under ./data by default)."""
    if ctx.args and not with_agent:
        raise typer.BadParameter(f"unexpected arguments {' '.join(ctx.args)} (agent flags need --with-agent)")
    from pydantic import ValidationError

    from taskpost.server.serve import serve

    try:
        config = settings(
            data_dir,
            database_url,
            log_level=log_level,
            log_format=log_format,
            ssl_certfile=ssl_certfile,
            ssl_keyfile=ssl_keyfile,
            forwarded_allow_ips=forwarded_allow_ips,
        )
    except ValidationError as exc:
        fail(CliError("; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())))
    if not with_agent:
        raise typer.Exit(serve(config, host, port))
    from taskpost.agent import event_loop
    from taskpost.single_service import agent_settings, run_single_service

    local = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    scheme = "https" if config.ssl_certfile else "http"
    agent, mint_key = agent_settings(ctx.args, f"{scheme}://{local}:{port}")
    raise typer.Exit(event_loop.run(run_single_service(config, host, port, agent, mint_key)))


_DB_URL_EXAMPLE = "TASKPOST_DATABASE_URL=postgresql://user:secret@db/taskpost"


@db_app.command(
    "upgrade",
    epilog="Examples:\n\n"
    "  taskpost db upgrade --data-dir /var/lib/taskpost   (the SQLite file there)\n\n"
    f"  {_DB_URL_EXAMPLE} taskpost db upgrade",
)
def db_upgrade(data_dir: DataDir = None, database_url: DatabaseUrl = None) -> None:
    """Upgrade the database to the revision this version needs; one already there is left alone.

    The coordinator does this on start unless TASKPOST_AUTO_MIGRATE=false. Safe while others start.
    """
    from taskpost import schema

    try:
        report = schema.upgrade(settings(data_dir, database_url))
    except (TaskpostError, ValueError, ModuleNotFoundError) as exc:
        fail(exc)
    for line in report.lines() or [report.summary()]:
        typer.echo(line)


@db_app.command(
    "current",
    epilog="Examples:\n\n"
    "  taskpost db current   prints e.g. 0003 (head)\n\n"
    f"  {_DB_URL_EXAMPLE} taskpost db current",
)
def db_current(data_dir: DataDir = None, database_url: DatabaseUrl = None) -> None:
    """Print the database's revision, marked (head) when it is the one this version needs."""
    from taskpost import schema

    try:
        state = schema.current(settings(data_dir, database_url))
    except (TaskpostError, ValueError, ModuleNotFoundError) as exc:
        fail(exc)
    typer.echo(state.describe())


@app.command(epilog=examples("taskpost types", "taskpost types --json | jq '.types[].name'"))
def types(
    server_url: ServerUrl = DEFAULT_SERVER_URL, api_key: ApiKey = None, as_json: AsJson = False
) -> None:
    """The job types agents have registered: version, agents online, parameters."""
    with client(server_url, api_key) as opened:
        known = opened.types()
    if as_json:
        typer.echo(render.as_json(known))
    else:
        render.show(render.types_table(known.types))


@app.command(
    epilog=examples(
        "taskpost purge --state dead --older-than 30d              (asks first)",
        "taskpost purge --state completed --state cancelled --older-than 7d --yes",
        "taskpost purge --state dead --older-than 1d --dry-run --json",
    )
)
def purge(
    state: Annotated[
        list[FinishedState],
        typer.Option("--state", help="Delete jobs in this finished state (repeatable).", show_default=False),
    ],
    older_than: Annotated[
        str, typer.Option(help="Only jobs that ended at least this long ago: 90s, 30m, 12h, 7d.")
    ],
    job_type: Annotated[str | None, typer.Option("--type", help="Only jobs of this type.")] = None,
    namespace: Annotated[str | None, typer.Option(help="Only this namespace (default: every one).")] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Delete without asking first.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only count what would be deleted.")] = False,
    as_json: AsJson = False,
    server_url: ServerUrl = DEFAULT_SERVER_URL,
    api_key: ApiKey = None,
) -> None:
    """Delete finished jobs now, with their events and the files only they used (an admin key)."""
    from taskpost import durations
    from taskpost import purge as purging

    try:
        older_than_s = durations.parse(older_than)
    except durations.InvalidDuration as exc:
        raise typer.BadParameter(str(exc), param_hint="--older-than") from None
    where = f"in namespace {namespace}" if namespace else "in every namespace"

    def confirm(preview: PurgeResult) -> bool:
        cutoff = preview.ended_before.isoformat()
        return typer.confirm(f"Delete {purging.describe(preview)} that ended by {cutoff}, {where}?", err=True)

    with client(server_url, api_key) as opened:

        def call(older_s: float, dry: bool) -> PurgeResult:
            return opened.purge(state, older_s, type=job_type, dry_run=dry, namespace=namespace)

        result = (
            call(older_than_s, True)
            if dry_run
            else purging.purge(call, older_than_s, None if yes else confirm)
        )
    if result is None:
        note("aborted: nothing deleted")
        raise typer.Exit(1)
    typer.echo(render.as_json(result) if as_json else purging.summary(result, where))


@app.command(epilog=examples("taskpost demo", "taskpost demo --work-dir /tmp/taskpost-demo --port 8765"))
def demo(
    work_dir: Annotated[Path, typer.Option(help="Where the demo keeps its database and outputs.")] = Path(
        "demo-output"
    ),
    port: Annotated[int, typer.Option(help="Coordinator port.")] = 8765,
) -> None:
    """Run the embedded default end to end: a coordinator and one agent on SQLite, and a sample job."""
    from taskpost.demo import run_demo

    try:
        run_demo(work_dir, port)
    except CliError as exc:
        fail(exc)


if __name__ == "__main__":
    app()
