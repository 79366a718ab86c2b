"""``taskpost``: run the coordinator or an agent, manage keys, inspect queues, submit jobs."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn
from urllib.parse import urlencode

import typer
from pydantic import BaseModel

from taskpost import render
from taskpost.agent.cli import agent_command
from taskpost.local import run_with_coordinator
from taskpost.protocol import Role
from taskpost.protocol.admin import FinishedState
from taskpost.protocol.logs import LogFormat
from taskpost.remote import CliError, RemoteCoordinator
from taskpost.server.errors import TaskpostError

if TYPE_CHECKING:
    from taskpost.server.coordinator import Coordinator

app = typer.Typer(help="Taskpost: a job system for media work over HTTP, no Redis.", no_args_is_help=True)
keys_app = typer.Typer(help="Create, list and revoke API keys.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
db_app = typer.Typer(
    help="Migrate the coordinator's database (TASKPOST_DATABASE_URL) to this version's tables.",
    no_args_is_help=True,
)
app.add_typer(db_app, name="db")
app.command("agent", help="Run a worker agent that claims and runs tasks.")(agent_command)

ServerUrl = Annotated[
    str | None,
    typer.Option(
        envvar="TASKPOST_SERVER_URL", help="Talk to this coordinator over HTTP instead of its database."
    ),
]
ApiKey = Annotated[str | None, typer.Option(envvar="TASKPOST_API_KEY", help="API key for --server-url.")]
DataDir = Annotated[Path | None, typer.Option(help="Data directory (TASKPOST_DATA_DIR).")]
DatabaseUrl = Annotated[str | None, typer.Option(help="Database URL (TASKPOST_DATABASE_URL).")]


def _settings(data_dir: Path | None, database_url: str | None, **options: Any) -> Any:
    """The coordinator's settings: environment and .env, with the options given on the command line."""
    from taskpost.server.settings import Settings

    overrides = {"data_dir": data_dir, "database_url": database_url, **options}
    return Settings(**{name: value for name, value in overrides.items() if value is not None})


def _remote(server_url: str, api_key: str | None) -> RemoteCoordinator:
    if not api_key:
        raise CliError("--server-url needs --api-key (or TASKPOST_API_KEY)")
    return RemoteCoordinator(server_url, api_key)


def _fail(error: Exception) -> NoReturn:
    typer.secho(f"error: {error}", fg=typer.colors.RED, err=True)
    raise typer.Exit(1)


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


def _call(
    server_url: str | None,
    api_key: str | None,
    data_dir: Path | None,
    database_url: str | None,
    request: tuple[str, str, dict[str, Any] | None],
    local: Callable[[Coordinator], Awaitable[Any]],
) -> Any:
    """One admin operation: over HTTP with --server-url, else on the local database. JSON back."""
    method, path, body = request
    try:
        if server_url:
            with _remote(server_url, api_key) as remote:
                return remote.request(method, path, json=body)
        result = run_with_coordinator(_settings(data_dir, database_url), local)
    except (CliError, TaskpostError) as exc:
        _fail(exc)
    if isinstance(result, list):
        return [item.model_dump(mode="json") for item in result]
    assert isinstance(result, BaseModel)
    return result.model_dump(mode="json")


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
    server_url: ServerUrl = None,
    api_key: ApiKey = None,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Create a key and print it once; only its hash is kept."""
    from taskpost.server.services import keys

    namespaces = namespace or []
    created = _call(
        server_url, api_key, data_dir, database_url,
        ("POST", "/keys", {"role": role.value, "name": name, "namespaces": namespaces}),
        lambda coord: keys.create(coord, role, name, namespaces),
    )  # fmt: skip
    typer.echo(created["key"])
    scope = ", ".join(created["info"]["namespaces"]) or "all namespaces"
    typer.secho(
        f"{role.value} key {created['info']['prefix']}… ({scope}) created; it is shown this once.", err=True
    )


@keys_app.command("list")
def keys_list(
    server_url: ServerUrl = None,
    api_key: ApiKey = None,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List keys: id, prefix, role, namespaces, created, last used, revoked."""
    from taskpost.server.services import keys

    rows = _call(server_url, api_key, data_dir, database_url, ("GET", "/keys", None), keys.list_keys)
    typer.echo(json.dumps(rows, indent=2) if as_json else render.keys_table(rows))


@keys_app.command("revoke")
def keys_revoke(
    key: Annotated[str, typer.Argument(help="The key's id or prefix.")],
    server_url: ServerUrl = None,
    api_key: ApiKey = None,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Revoke a key; it stops working at once."""
    from taskpost.server.services import keys

    revoked = _call(
        server_url, api_key, data_dir, database_url,
        ("DELETE", f"/keys/{key}", None),
        lambda coord: keys.revoke(coord, key),
    )  # fmt: skip
    typer.echo(f"revoked {revoked['role']} key {revoked['prefix']}… ({revoked['id']})")


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
    server_url: ServerUrl = None,
    api_key: ApiKey = None,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    namespace: Annotated[
        str | None, typer.Option(help="Only this namespace's jobs and agents (default: every namespace).")
    ] = None,
) -> None:
    """Jobs per type, priority and state, and the registered agents (like ``rq info``)."""
    from taskpost.server.services.stats import stats as read_stats

    path = f"/stats?{urlencode({'namespace': namespace})}" if namespace else "/stats"
    stats = _call(
        server_url, api_key, data_dir, database_url,
        ("GET", path, None),
        lambda coord: read_stats(coord, namespace),
    )  # fmt: skip
    typer.echo(json.dumps(stats, indent=2) if as_json else render.stats_text(stats))


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
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    server_url: ServerUrl = None,
    api_key: ApiKey = None,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Delete finished jobs now, with their events and the files only they used."""
    from taskpost import purge as purging
    from taskpost.protocol.admin import PurgeRequest
    from taskpost.server.services import retention

    try:
        body = purging.request_body(state, purging.parse_duration(older_than), job_type)
    except purging.InvalidDuration as exc:
        raise typer.BadParameter(str(exc), param_hint="--older-than") from None
    except CliError as exc:
        _fail(exc)
    path = f"/admin/purge?{urlencode({'namespace': namespace})}" if namespace else "/admin/purge"
    where = f"in namespace {namespace}" if namespace else "in every namespace"

    def call(request: dict[str, Any]) -> dict[str, Any]:
        async def local(coord: Coordinator) -> BaseModel:
            return await retention.purge(coord, PurgeRequest.model_validate(request), namespace)

        result: dict[str, Any] = _call(
            server_url, api_key, data_dir, database_url, ("POST", path, request), local
        )
        return result

    def confirm(preview: dict[str, Any]) -> bool:
        return typer.confirm(
            f"Delete {purging.describe(preview)} that ended by {preview['ended_before']}, {where}?", err=True
        )

    if dry_run:
        result = call({**body, "dry_run": True})
    else:
        done = purging.purge(call, body, None if yes else confirm)
        if done is None:
            typer.secho("aborted: nothing deleted", err=True)
            raise typer.Exit(1)
        result = done
    if as_json:
        typer.echo(json.dumps(result, indent=2))
    else:
        typer.echo(purging.summary(result, where))


@app.command()
def submit(
    job_type: Annotated[str, typer.Argument(help="The job type, e.g. noop.")],
    server_url: Annotated[str, typer.Option(envvar="TASKPOST_SERVER_URL")] = "http://127.0.0.1:8000",
    api_key: ApiKey = None,
    param: Annotated[
        list[str] | None,
        typer.Option("--param", "-p", help="key=value (value parsed as JSON when it can be)."),
    ] = None,
    file: Annotated[
        list[Path] | None, typer.Option("--file", "-f", help="An input file (repeatable).")
    ] = None,
    priority: Annotated[str, typer.Option(help="high, default or low.")] = "default",
    wait: Annotated[bool, typer.Option(help="Wait for the job to end and print it.")] = False,
    output_dir: Annotated[Path | None, typer.Option(help="With --wait: save the outputs here.")] = None,
) -> None:
    """Submit a job (and optionally wait for it)."""
    from taskpost.submit import submit_job

    try:
        with _remote(server_url, api_key) as remote:
            job = submit_job(remote, job_type, param or [], file or [], priority, wait, output_dir)
    except CliError as exc:
        _fail(exc)
    typer.echo(json.dumps(job, indent=2))


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
