"""``taskpost keys create|list|revoke|rotate``: API keys, asked of the coordinator with an admin key
(``create --local`` writes an admin key into the database itself)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from taskpost import durations, render
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
from taskpost.protocol import KeyCreated, Role

keys_app = typer.Typer(help="Create, list, revoke and rotate API keys (an admin key).", no_args_is_help=True)


def _print_created(created: KeyCreated, as_json: bool, what: str) -> None:
    typer.echo(render.as_json(created) if as_json else created.key)
    info = created.info
    scope = ", ".join(info.namespaces) or "all namespaces"
    limits = f", task types {', '.join(info.task_types)}" if info.task_types else ""
    expiry = f", expires {info.expires_at.isoformat(timespec='seconds')}" if info.expires_at else ""
    note(f"{info.role.value} key {info.prefix}… ({scope}{limits}{expiry}) {what}; it is shown this once.")


@keys_app.command(
    "create",
    epilog=examples(
        "taskpost keys create --role client --namespace acme --name billing",
        "taskpost keys create --role worker --task-type transcription --expires-in 90d",
        "taskpost keys create --role metrics --name prometheus",
        "taskpost keys create --role admin --local --data-dir /var/lib/taskpost",
    ),
)
def keys_create(
    role: Annotated[Role, typer.Option(help="admin, client, worker or metrics.")],
    name: Annotated[str | None, typer.Option(help="A note to recognise the key by.")] = None,
    namespace: Annotated[
        list[str] | None,
        typer.Option(
            "--namespace",
            help="client: the one namespace whose jobs the key sees (default: default). "
            "worker: a namespace whose tasks it may claim (repeatable; none: all). admin, metrics: none.",
        ),
    ] = None,
    task_type: Annotated[
        list[str] | None,
        typer.Option(
            "--task-type", help="worker: a job type it may register and claim (repeatable; none: all)."
        ),
    ] = None,
    expires_in: Annotated[
        str | None,
        typer.Option(help="The key stops working after this long: 90d, 12h, 30m (default: never)."),
    ] = None,
    as_json: AsJson = False,
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
    """Create a key and print it once (only its hash is kept)."""
    namespaces = namespace or []
    expires_in_s = durations.option(expires_in, "--expires-in")
    if local:
        if task_type or expires_in_s is not None:
            fail("--local creates a plain admin key: leave out --task-type and --expires-in")
        created = _create_local_admin_key(role, name, namespaces, data_dir, database_url)
    elif data_dir is not None or database_url is not None:
        fail("--data-dir and --database-url name a database to write to directly: add --local")
    else:
        with client(server_url, api_key) as opened:
            created = opened.create_key(
                role, name, namespaces, expires_in_s=expires_in_s, task_types=task_type or ()
            )
    _print_created(created, as_json, "created")


def _create_local_admin_key(
    role: Role, name: str | None, namespaces: list[str], data_dir: Path | None, database_url: str | None
) -> KeyCreated:
    from taskpost.local import run_with_coordinator
    from taskpost.server.errors import TaskpostError as ServerError
    from taskpost.server.services import keys

    if role is not Role.ADMIN:
        fail(f"--local creates admin keys only: create a {role.value} key over HTTP with an admin key")
    try:
        return run_with_coordinator(
            settings(data_dir, database_url), lambda coord: keys.create(coord, role, name, namespaces)
        )
    except (ServerError, ValueError, ModuleNotFoundError) as exc:
        fail(exc)


@keys_app.command(
    "list", epilog=examples("taskpost keys list", "taskpost keys list --json | jq '.[].prefix'")
)
def keys_list(
    server_url: ServerUrl = DEFAULT_SERVER_URL, api_key: ApiKey = None, as_json: AsJson = False
) -> None:
    """List keys: role, namespaces, task types, created, last used, expiry, revoked."""
    with client(server_url, api_key) as opened:
        keys = opened.list_keys()
    if as_json:
        typer.echo(render.as_json(keys))
    else:
        render.show(render.keys_table(keys))


@keys_app.command(
    "revoke", epilog=examples("taskpost keys revoke tp_c_1a2b3c", "taskpost keys revoke <key id>")
)
def keys_revoke(
    key: Annotated[str, typer.Argument(help="The key's id or prefix.")],
    server_url: ServerUrl = DEFAULT_SERVER_URL,
    api_key: ApiKey = None,
    as_json: AsJson = False,
) -> None:
    """Revoke a key; it stops working at once."""
    with client(server_url, api_key) as opened:
        revoked = opened.revoke_key(key)
    if as_json:
        typer.echo(render.as_json(revoked))
    else:
        typer.echo(f"revoked {revoked.role.value} key {revoked.prefix}… ({revoked.id})")


@keys_app.command(
    "rotate",
    epilog=examples(
        "taskpost keys rotate tp_w_1a2b3c              (the old secret works 24h more)",
        "taskpost keys rotate <key id> --grace 0s      (the old secret stops at once)",
    ),
)
def keys_rotate(
    key: Annotated[str, typer.Argument(help="The key's id or prefix.")],
    grace: Annotated[
        str | None,
        typer.Option(
            help="How long the old secret keeps working beside the new one: 24h, 30m, 0s (default 24h)."
        ),
    ] = None,
    as_json: AsJson = False,
    server_url: ServerUrl = DEFAULT_SERVER_URL,
    api_key: ApiKey = None,
) -> None:
    """Issue a new secret for a key and print it once; the key keeps its id, role and limits."""
    grace_s = durations.option(grace, "--grace")
    with client(server_url, api_key) as opened:
        created = opened.rotate_key(key, grace_s)
    until = created.info.previous_expires_at
    if until is not None and until > datetime.now(UTC):
        old = f"the old secret works until {until.isoformat(timespec='seconds')}"
    else:
        old = "the old secret stopped"
    _print_created(created, as_json, f"rotated ({old})")
