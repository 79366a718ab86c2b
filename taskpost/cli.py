"""``taskpost``: run the coordinator or an agent, manage keys, inspect queues, submit jobs.

Every command that talks to a coordinator goes through ``taskpost.client`` over HTTP; only
``taskpost db`` and ``taskpost keys create --local`` (an admin key when none is at hand) open
the database directly.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from pydantic import BaseModel

from taskpost import render
from taskpost.agent.cli import agent_command
from taskpost.client import Client, TaskpostError
from taskpost.errors import CliError
from taskpost.protocol import KeyCreated, Priority, Role
from taskpost.protocol.admin import FinishedState, PurgeResult
from taskpost.protocol.logs import LogFormat

app = typer.Typer(help="Taskpost: a job system for media work over HTTP, no Redis.", no_args_is_help=True)
keys_app = typer.Typer(help="Create, list and revoke API keys.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
db_app = typer.Typer(
    help="Migrate the coordinator's database (TASKPOST_DATABASE_URL) to this version's tables.",
    no_args_is_help=True,
)
app.add_typer(db_app, name="db")
app.command("agent", help="Run a worker agent that claims and runs tasks.")(agent_command)

DEFAULT_SERVER_URL = "http://127.0.0.1:8000"
CLI_RETRIES = 2
"""Fewer than a program's: a person waits at the terminal for a coordinator that is down."""

ServerUrl = Annotated[str, typer.Option(envvar="TASKPOST_SERVER_URL", help="The coordinator's URL.")]
ApiKey = Annotated[
    str | None,
    typer.Option(envvar="TASKPOST_API_KEY", help="API key (prefer the environment variable to the flag)."),
]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON.")]
DataDir = Annotated[Path | None, typer.Option(help="Data directory (TASKPOST_DATA_DIR).")]
DatabaseUrl = Annotated[str | None, typer.Option(help="Database URL (TASKPOST_DATABASE_URL).")]


def _settings(data_dir: Path | None, database_url: str | None, **options: Any) -> Any:
    """The coordinator's settings: environment and .env, with the options given on the command line."""
    from taskpost.server.settings import Settings

    overrides = {"data_dir": data_dir, "database_url": database_url, **options}
    return Settings(**{name: value for name, value in overrides.items() if value is not None})


def _fail(error: Exception | str) -> NoReturn:
    typer.secho(f"error: {error}", fg=typer.colors.RED, err=True)
    raise typer.Exit(1)


def _refused(error: TaskpostError) -> str:
    status = f", HTTP {error.status}" if error.status else ""
    return f"{error.message} ({error.code}{status})"


@contextmanager
def _client(server_url: str, api_key: str | None) -> Iterator[Client]:
    """A client of the coordinator; any error it raises is printed and ends the command."""
    if not api_key:
        _fail(f"no API key for {server_url}: give --api-key or set TASKPOST_API_KEY")
    try:
        with Client(server_url, api_key, retries=CLI_RETRIES) as client:
            yield client
    except TaskpostError as exc:
        _fail(_refused(exc))


def _as_json(value: BaseModel | list[Any]) -> str:
    if isinstance(value, list):
        return json.dumps([item.model_dump(mode="json") for item in value], indent=2)
    return json.dumps(value.model_dump(mode="json"), indent=2)


def _note(line: str) -> None:
    typer.secho(line, err=True)


@app.command()
def server(
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
) -> None:
    """Run the coordinator (SQLite under ./data by default)."""
    from pydantic import ValidationError

    from taskpost.server.serve import serve

    try:
        settings = _settings(
            data_dir,
            database_url,
            log_level=log_level,
            log_format=log_format,
            ssl_certfile=ssl_certfile,
            ssl_keyfile=ssl_keyfile,
            forwarded_allow_ips=forwarded_allow_ips,
        )
    except ValidationError as exc:
        _fail(CliError("; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())))
    raise typer.Exit(serve(settings, host, port))


@keys_app.command("create")
def keys_create(
    role: Annotated[Role, typer.Option(help="admin, client or worker.")],
    name: Annotated[str | None, typer.Option(help="A note to recognise the key by.")] = None,
    namespace: Annotated[
        list[str] | None,
        typer.Option(
            "--namespace",
            help="client: the one namespace whose jobs the key sees (default: default). "
            "worker: a namespace whose tasks it may claim (repeatable; none: all). admin: none.",
        ),
    ] = None,
    server_url: ServerUrl = DEFAULT_SERVER_URL,
    api_key: ApiKey = None,
    local: Annotated[
        bool,
        typer.Option(
            "--local",
            help="Write an admin key into the database itself (TASKPOST_DATABASE_URL, --data-dir, "
            "--database-url), for when no admin key is at hand to ask the coordinator with.",
        ),
    ] = False,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Create a key (an admin key asks the coordinator) and print it once; only its hash is kept."""
    namespaces = namespace or []
    if local:
        created = _create_local_admin_key(role, name, namespaces, data_dir, database_url)
    elif data_dir is not None or database_url is not None:
        _fail("--data-dir and --database-url name a database to write to directly: add --local")
    else:
        with _client(server_url, api_key) as client:
            created = client.create_key(role, name, namespaces)
    typer.echo(created.key)
    scope = ", ".join(created.info.namespaces) or "all namespaces"
    _note(f"{role.value} key {created.info.prefix}… ({scope}) created; it is shown this once.")


def _create_local_admin_key(
    role: Role, name: str | None, namespaces: list[str], data_dir: Path | None, database_url: str | None
) -> KeyCreated:
    from taskpost.local import run_with_coordinator
    from taskpost.server.errors import TaskpostError as ServerError
    from taskpost.server.services import keys

    if role is not Role.ADMIN:
        _fail(f"--local creates admin keys only: create a {role.value} key over HTTP with an admin key")
    try:
        return run_with_coordinator(
            _settings(data_dir, database_url), lambda coord: keys.create(coord, role, name, namespaces)
        )
    except (ServerError, ValueError, ModuleNotFoundError) as exc:
        _fail(exc)


@keys_app.command("list")
def keys_list(
    server_url: ServerUrl = DEFAULT_SERVER_URL, api_key: ApiKey = None, as_json: AsJson = False
) -> None:
    """List keys: id, prefix, role, namespaces, created, last used, revoked."""
    with _client(server_url, api_key) as client:
        keys = client.list_keys()
    typer.echo(_as_json(keys) if as_json else render.keys_table(keys))


@keys_app.command("revoke")
def keys_revoke(
    key: Annotated[str, typer.Argument(help="The key's id or prefix.")],
    server_url: ServerUrl = DEFAULT_SERVER_URL,
    api_key: ApiKey = None,
) -> None:
    """Revoke a key; it stops working at once."""
    with _client(server_url, api_key) as client:
        revoked = client.revoke_key(key)
    typer.echo(f"revoked {revoked.role.value} key {revoked.prefix}… ({revoked.id})")


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
        report = schema.upgrade(_settings(data_dir, database_url))
    except (TaskpostError, ValueError, ModuleNotFoundError) as exc:
        _fail(exc)
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
        state = schema.current(_settings(data_dir, database_url))
    except (TaskpostError, ValueError, ModuleNotFoundError) as exc:
        _fail(exc)
    typer.echo(state.describe())


@app.command()
def info(
    server_url: ServerUrl = DEFAULT_SERVER_URL,
    api_key: ApiKey = None,
    as_json: AsJson = False,
    namespace: Annotated[
        str | None, typer.Option(help="Only this namespace's jobs and agents (default: every namespace).")
    ] = None,
) -> None:
    """Jobs per type, priority and state, and the registered agents (like ``rq info``)."""
    with _client(server_url, api_key) as client:
        stats = client.stats(namespace)
    typer.echo(_as_json(stats) if as_json else render.stats_text(stats))


@app.command()
def types(
    server_url: ServerUrl = DEFAULT_SERVER_URL, api_key: ApiKey = None, as_json: AsJson = False
) -> None:
    """The job types agents have registered: version, agents online, parameters."""
    with _client(server_url, api_key) as client:
        known = client.types()
    typer.echo(_as_json(known) if as_json else render.types_table(known.types))


@app.command()
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
    from taskpost import purge as purging

    try:
        older_than_s = purging.parse_duration(older_than)
    except purging.InvalidDuration as exc:
        raise typer.BadParameter(str(exc), param_hint="--older-than") from None
    where = f"in namespace {namespace}" if namespace else "in every namespace"

    def confirm(preview: PurgeResult) -> bool:
        cutoff = preview.ended_before.isoformat()
        return typer.confirm(f"Delete {purging.describe(preview)} that ended by {cutoff}, {where}?", err=True)

    with _client(server_url, api_key) as client:

        def call(older_s: float, dry: bool) -> PurgeResult:
            return client.purge(state, older_s, type=job_type, dry_run=dry, namespace=namespace)

        result = (
            call(older_than_s, True)
            if dry_run
            else purging.purge(call, older_than_s, None if yes else confirm)
        )
    if result is None:
        _note("aborted: nothing deleted")
        raise typer.Exit(1)
    typer.echo(_as_json(result) if as_json else purging.summary(result, where))


@app.command()
def submit(
    job_type: Annotated[str, typer.Argument(help="The job type, e.g. noop or transcription.")],
    param: Annotated[
        list[str] | None,
        typer.Option("--param", "-p", help="key=value (value parsed as JSON when it can be)."),
    ] = None,
    file: Annotated[
        list[Path] | None,
        typer.Option("--file", "-f", help="An input file, uploaded with the job (repeatable)."),
    ] = None,
    priority: Annotated[Priority, typer.Option(help="high, default or low.")] = Priority.DEFAULT,
    run_at: Annotated[
        str | None, typer.Option(help="Not before this time, ISO 8601 with a zone: 2026-12-03T08:00:00Z.")
    ] = None,
    delay: Annotated[
        str | None, typer.Option(help="Not before this long from now: 90 (seconds), 30m, 2h.")
    ] = None,
    cache: Annotated[
        bool | None,
        typer.Option(
            "--cache/--no-cache",
            help="Take the result of an equal completed job (same type, params and inputs), if there is one.",
            show_default=False,
        ),
    ] = None,
    webhook_url: Annotated[
        str | None, typer.Option(help="POSTed a signed summary (X-Taskpost-Signature) when the job ends.")
    ] = None,
    wait: Annotated[
        bool, typer.Option(help="Wait for the job to end, saying where it is; exit 1 unless it completed.")
    ] = False,
    wait_timeout: Annotated[
        float | None, typer.Option(help="With --wait: give up after this many seconds.")
    ] = None,
    output_dir: Annotated[Path | None, typer.Option(help="With --wait: save the outputs here.")] = None,
    server_url: ServerUrl = DEFAULT_SERVER_URL,
    api_key: ApiKey = None,
) -> None:
    """Submit a job and print it as JSON (with --wait, once it ended); warnings go to stderr."""
    from taskpost import submit as submitting
    from taskpost.protocol import JobState

    params = submitting.parse_params(param or [])
    files = submitting.checked_files(file or [])
    when, delay_s = submitting.parse_run_at(run_at), submitting.parse_delay(delay)
    with _client(server_url, api_key) as client:
        job = submitting.submit_and_wait(
            client, job_type, params, files,
            priority=priority, run_at=when, delay_s=delay_s, cache=cache, webhook_url=webhook_url,
            wait=wait, wait_timeout_s=wait_timeout, output_dir=output_dir, echo=_note,
        )  # fmt: skip
    typer.echo(job.model_dump_json(indent=2))
    if wait and job.state is not JobState.COMPLETED:
        raise typer.Exit(1)


@app.command()
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
        _fail(exc)


if __name__ == "__main__":
    app()
