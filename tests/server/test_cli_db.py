"""``taskpost db upgrade`` and ``taskpost db current`` on a SQLite file and on PostgreSQL."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from typer.testing import CliRunner, Result

from taskpost.cli import app
from taskpost.server.db.migrate import head_revision

HEAD = head_revision()
OLD_SCHEMA = Path(__file__).with_name("schema_v0.sql")


def _db(*args: str, env: dict[str, str] | None = None, exit_code: int = 0) -> Result:
    result = CliRunner().invoke(app, ["db", *args], env={"TASKPOST_DATABASE_URL": "", **(env or {})})
    assert result.exit_code == exit_code, result.output
    return result


def test_a_new_sqlite_file_is_upgraded_once_and_reported_at_head(tmp_path: Path) -> None:
    data = ["--data-dir", str(tmp_path / "data")]
    assert (
        _db("current", *data).stdout
        == "none: no tables yet (`taskpost db upgrade` creates them at " + HEAD + ")\n"
    )
    upgraded = _db("upgrade", *data).stdout.splitlines()
    assert upgraded[0].startswith("applied revision 0001: ")
    assert upgraded[-1] == f"upgraded from an empty database to {HEAD} (head)"
    assert _db("current", *data).stdout == f"{HEAD} (head)\n"
    assert _db("upgrade", *data).stdout == f"already at {HEAD} (head): nothing to do\n"
    with sqlite3.connect(tmp_path / "data" / "taskpost.db") as db:
        assert db.execute("SELECT version_num FROM alembic_version").fetchall() == [(HEAD,)]


def test_a_first_release_file_named_by_the_environment_is_recognised_and_upgraded(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as db:
        db.executescript(OLD_SCHEMA.read_text())
        db.execute("INSERT INTO job_types (name, first_seen_at) VALUES ('resize', 1)")
    env = {"TASKPOST_DATABASE_URL": f"sqlite:///{path.as_posix()}"}
    assert _db("current", env=env).stdout.startswith("none: tables made before migrations, matching 0001 ")
    upgraded = _db("upgrade", env=env).stdout.splitlines()
    assert upgraded[0] == "found tables made before migrations matching revision 0001: recorded it"
    assert upgraded[-1] == f"upgraded from 0001 to {HEAD} (head)"
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT name, last_seen_at FROM job_types").fetchall() == [("resize", None)]


def test_postgresql_named_as_users_write_it(postgres_url: str) -> None:
    assert postgres_url.startswith("postgresql://")
    env = {"TASKPOST_DATABASE_URL": postgres_url}
    assert _db("current", env=env).stdout.startswith("none: no tables yet")
    assert (
        _db("upgrade", env=env).stdout.splitlines()[-1] == f"upgraded from an empty database to {HEAD} (head)"
    )
    assert _db("current", env=env).stdout == f"{HEAD} (head)\n"


def test_an_unsupported_url_is_one_line_naming_what_works() -> None:
    result = _db("current", env={"TASKPOST_DATABASE_URL": "mysql://db/taskpost"}, exit_code=1)
    assert "unsupported database URL scheme 'mysql'" in result.output
    assert "Traceback" not in result.output


def test_a_local_admin_key_refuses_an_outdated_database_when_auto_migrate_is_off(tmp_path: Path) -> None:
    create = ["keys", "create", "--role", "admin", "--local", "--data-dir", str(tmp_path)]
    env = {"TASKPOST_AUTO_MIGRATE": "false", "TASKPOST_ADMIN_KEY": "", "TASKPOST_DATABASE_URL": ""}
    refused = CliRunner().invoke(app, create, env=env)
    assert refused.exit_code == 1
    assert "run `taskpost db upgrade`" in refused.output
    _db("upgrade", "--data-dir", str(tmp_path))
    created = CliRunner().invoke(app, create, env=env)
    assert created.exit_code == 0, created.output
    assert created.stdout.startswith("tp_a_")


def test_the_server_with_auto_migrate_off_refuses_an_outdated_database_in_one_line(tmp_path: Path) -> None:
    env = {"TASKPOST_AUTO_MIGRATE": "false", "TASKPOST_ADMIN_KEY": "", "TASKPOST_DATABASE_URL": ""}
    result = CliRunner().invoke(app, ["server", "--data-dir", str(tmp_path), "--port", "0"], env=env)
    assert result.exit_code == 3  # uvicorn's "could not start"
    assert "the database has no tables yet and this version needs revision" in result.output
    assert "run `taskpost db upgrade`" in result.output
    assert "Traceback" not in result.output
