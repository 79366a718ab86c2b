"""``taskpost keys`` through a real coordinator over HTTP, and ``--local``: the one admin key
written to the database directly, for when no admin key is at hand."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from click.testing import Result
from typer.testing import CliRunner

from taskpost.cli import app
from tests.agent.live import listening_socket, served_coordinator
from tests.server.conftest import ADMIN_KEY, make_settings

pytestmark = pytest.mark.anyio

_NO_ENV = {
    "TASKPOST_ADMIN_KEY": "",
    "TASKPOST_API_KEY": "",
    "TASKPOST_SERVER_URL": "",
    "TASKPOST_DATABASE_URL": "",
}


def keys(*args: str, **env: str) -> Result:
    """The command in this thread (it may run its own event loop: call it from async tests in another)."""
    return CliRunner().invoke(app, ["keys", *args], env={**_NO_ENV, **env})


@asynccontextmanager
async def coordinator(data_dir: Path) -> AsyncIterator[dict[str, str]]:
    """A coordinator behind uvicorn; yields the environment that points the CLI at it as admin."""
    async with served_coordinator(make_settings(data_dir), listening_socket()) as url:
        yield {"TASKPOST_SERVER_URL": url, "TASKPOST_API_KEY": ADMIN_KEY}


async def test_keys_are_created_with_namespaces_and_listed_with_them(tmp_path: Path) -> None:
    async with coordinator(tmp_path / "data") as env:

        def created(*args: str) -> str:
            result = keys("create", *args, **env)
            assert result.exit_code == 0, result.output
            return result.stdout.strip()

        client = await asyncio.to_thread(created, "--role", "client", "--namespace", "acme")
        await asyncio.to_thread(created, "--role", "worker", "--namespace", "b", "--namespace", "a")
        await asyncio.to_thread(created, "--role", "worker")
        listing = await asyncio.to_thread(keys, "list", "--json", **env)
        table = await asyncio.to_thread(keys, "list", **env)
    assert listing.exit_code == 0, listing.output
    listed = [k for k in json.loads(listing.stdout) if k["role"] != "admin"]
    assert [(k["role"], k["namespaces"]) for k in listed] == [
        ("client", ["acme"]),
        ("worker", ["a", "b"]),
        ("worker", []),
    ]
    assert client.startswith(listed[0]["prefix"])
    assert "namespaces" in table.stdout.splitlines()[0]
    assert "acme" in table.stdout and "a,b" in table.stdout and "all" in table.stdout


async def test_the_coordinators_refusal_is_printed_with_its_code(tmp_path: Path) -> None:
    async with coordinator(tmp_path / "data") as env:
        refused = await asyncio.to_thread(keys, "create", "--role", "admin", "--namespace", "acme", **env)
        unknown = await asyncio.to_thread(keys, "revoke", "no-such-key", **env)
    assert refused.exit_code == 1  # checked as the coordinator would, before sending
    assert "namespaces: an admin key sees every namespace" in refused.stderr
    assert unknown.exit_code == 1
    assert "no single API key has id or prefix 'no-such-key' (key_not_found, HTTP 404)" in unknown.stderr


def test_a_command_without_a_key_says_how_to_give_one() -> None:
    result = keys("list", TASKPOST_SERVER_URL="http://127.0.0.1:9")
    assert result.exit_code == 1
    assert "no API key for http://127.0.0.1:9: give --api-key or set TASKPOST_API_KEY" in result.stderr


def test_an_unreachable_coordinator_is_named() -> None:
    sock = listening_socket()  # bound, never listening: connections are refused
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    try:
        result = keys("list", TASKPOST_SERVER_URL=url, TASKPOST_API_KEY="some-key")
    finally:
        sock.close()
    assert result.exit_code == 1 and f"cannot reach the coordinator at {url}" in result.stderr


async def test_a_local_admin_key_works_on_the_coordinator_that_uses_the_database(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    made = await asyncio.to_thread(keys, "create", "--role", "admin", "--local", "--data-dir", str(data_dir))
    assert made.exit_code == 0, made.output
    new_admin_key = made.stdout.strip()
    assert "admin key" in made.stderr and "shown this once" in made.stderr
    async with coordinator(data_dir) as env:
        listing = await asyncio.to_thread(
            keys, "list", "--json", **{**env, "TASKPOST_API_KEY": new_admin_key}
        )
    assert listing.exit_code == 0, listing.output
    assert any(new_admin_key.startswith(k["prefix"]) for k in json.loads(listing.stdout))


def test_local_makes_admin_keys_only_and_needs_asking_for(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    worker = keys("create", "--role", "worker", "--local", "--data-dir", str(data_dir))
    assert worker.exit_code == 1 and "--local creates admin keys only" in worker.stderr
    unasked = keys("create", "--role", "admin", "--data-dir", str(data_dir))
    assert unasked.exit_code == 1 and "add --local" in unasked.stderr
    assert not data_dir.exists()  # neither opened the database
