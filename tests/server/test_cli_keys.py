"""``taskpost keys`` on the coordinator's database: namespaces given and shown."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from taskpost.cli import app


def _run(data_dir: Path, *args: str) -> str:
    result = CliRunner().invoke(app, [*args, "--data-dir", str(data_dir)], env={"TASKPOST_ADMIN_KEY": ""})
    assert result.exit_code == 0, result.output
    return result.stdout


def test_keys_are_created_with_namespaces_and_listed_with_them(tmp_path: Path) -> None:
    client = _run(tmp_path, "keys", "create", "--role", "client", "--namespace", "acme").strip()
    _run(tmp_path, "keys", "create", "--role", "worker", "--namespace", "b", "--namespace", "a")
    _run(tmp_path, "keys", "create", "--role", "worker")
    listed = json.loads(_run(tmp_path, "keys", "list", "--json"))
    assert [(k["role"], k["namespaces"]) for k in listed] == [
        ("client", ["acme"]),
        ("worker", ["a", "b"]),
        ("worker", []),
    ]
    assert client.startswith(listed[0]["prefix"])
    table = _run(tmp_path, "keys", "list")
    assert "namespaces" in table.splitlines()[0]
    assert "acme" in table and "a,b" in table and "all" in table


def test_an_admin_key_with_a_namespace_is_refused(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["keys", "create", "--role", "admin", "--namespace", "acme", "--data-dir", str(tmp_path)]
    )
    assert result.exit_code == 1
    assert "admin key sees every namespace" in result.output
