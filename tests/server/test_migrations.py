"""Alembic migrations (server/db/migrate.py) on SQLite and on a real PostgreSQL.

The migrated tables equal what the models make, a database of the first release or of an older
``create_all`` is upgraded with its rows intact, a second upgrade changes nothing, two coordinators
upgrading one PostgreSQL database at once both succeed, and a coordinator told not to migrate
refuses an outdated database.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlmodel import SQLModel

from taskpost.server.app import create_app
from taskpost.server.coordinator import Coordinator
from taskpost.server.db import migrate
from taskpost.server.db.database import Database
from taskpost.server.db.dialects import driver_url
from taskpost.server.db.migrate import SchemaNotCurrent, UpgradeReport
from tests.server.conftest import ManualClock, eventually, make_settings, running_api
from tests.support.postgres import PostgresCluster

pytestmark = pytest.mark.anyio

OLD_SCHEMA = Path(__file__).with_name("schema_v0.sql")
HEAD = migrate.head_revision()
REVISIONS = [
    script.revision
    for script in reversed(list(ScriptDirectory.from_config(migrate.alembic_config()).walk_revisions()))
]
"""Oldest first."""

NewDatabase = Callable[[], str]


@pytest.fixture(params=["sqlite", "postgresql"])
def new_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[NewDatabase]:
    """Makes empty databases of one kind, as URLs the way users write them."""
    made: list[str] = []

    def make() -> str:
        if request.param == "sqlite":
            url = f"sqlite:///{(tmp_path / f'db{len(made)}' / 'taskpost.db').as_posix()}"
            (tmp_path / f"db{len(made)}").mkdir()
        else:
            cluster: PostgresCluster = request.getfixturevalue("postgres_cluster")
            url = cluster.create_database()
        made.append(url)
        return url

    yield make
    if request.param == "postgresql":
        cluster = request.getfixturevalue("postgres_cluster")
        for url in made:
            cluster.drop_database(url)


@pytest.fixture
async def engines() -> AsyncIterator[Callable[[str], AsyncEngine]]:
    opened: list[AsyncEngine] = []

    def open_engine(url: str) -> AsyncEngine:
        opened.append(create_async_engine(driver_url(url)))
        return opened[-1]

    yield open_engine
    for engine in opened:
        await engine.dispose()


def _revisions(report: UpgradeReport) -> list[str]:
    return [applied.split(":")[0] for applied in report.applied]


async def _upgrade(engine: AsyncEngine) -> UpgradeReport:
    async with engine.begin() as conn:
        return await conn.run_sync(migrate.upgrade_to_head)


async def _to_revision(engine: AsyncEngine, revision: str) -> None:
    async with engine.begin() as conn:
        await conn.run_sync(lambda sync: command.upgrade(migrate.alembic_config(sync), revision))


async def _create_all(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.run_sync(SQLModel.metadata.create_all)


def _schema(conn: sa.Connection) -> dict[str, Any]:
    """Everything about the tables that matters, in a form that ignores column order."""
    inspector = sa.inspect(conn)
    tables: dict[str, Any] = {}
    for name in inspector.get_table_names():
        if name == "alembic_version":
            continue
        tables[name] = {
            "columns": {
                column["name"]: (str(column["type"]), column["nullable"], column["default"])
                for column in inspector.get_columns(name)
            },
            "primary key": inspector.get_pk_constraint(name)["constrained_columns"],
            "unique": sorted(
                (unique["name"] or "", *unique["column_names"])
                for unique in inspector.get_unique_constraints(name)
            ),
        }
    # The catalog's own text of every index: SQLite reflects no DESC, so compare what it stores.
    if conn.dialect.name == "sqlite":
        sql = "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
    else:
        sql = "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema()"
    tables["indexes"] = {name: text for name, text in conn.exec_driver_sql(sql)}
    tables["indexes"].pop("alembic_version_pkc", None)
    if conn.dialect.name == "postgresql":
        sql = "SELECT sequencename, data_type FROM pg_sequences WHERE schemaname = current_schema()"
        tables["sequences"] = {name: text for name, text in conn.exec_driver_sql(sql)}
    return tables


def _differences(conn: sa.Connection) -> list[Any]:
    """What Alembic's autogenerate would change to make the tables match the models."""
    context = MigrationContext.configure(conn, opts={"compare_type": True, "compare_server_default": True})
    return list(compare_metadata(context, SQLModel.metadata))


async def _assert_tables_match_the_models(
    engine: AsyncEngine, new_database: NewDatabase, engines: Callable[[str], AsyncEngine]
) -> None:
    """As autogenerate sees it, and as the catalog has it next to tables made by ``create_all``."""
    assert await _read(engine, _differences) == []
    created = engines(new_database())
    await _create_all(created)
    assert await _read(engine, _schema) == await _read(created, _schema)


async def _read(engine: AsyncEngine, check: Callable[[sa.Connection], Any]) -> Any:
    async with engine.connect() as conn:
        return await conn.run_sync(check)


async def test_migrated_tables_equal_the_models_and_a_second_upgrade_does_nothing(
    new_database: NewDatabase, engines: Callable[[str], AsyncEngine]
) -> None:
    migrated, created = engines(new_database()), engines(new_database())
    report = await _upgrade(migrated)
    assert (report.before, report.after, report.stamped) == (None, HEAD, None)
    assert _revisions(report) == REVISIONS
    assert await _read(migrated, _differences) == []
    await _create_all(created)
    expected = await _read(created, _schema)
    assert "jobs" in expected and "ix_jobs_claim" in expected["indexes"]
    assert "DESC" in expected["indexes"]["ix_jobs_claim"]
    assert await _read(migrated, _schema) == expected

    again = await _upgrade(migrated)
    assert (again.before, again.after, again.stamped, again.applied) == (HEAD, HEAD, None, ())
    assert again.lines() == [] and again.summary() == f"already at {HEAD} (head): nothing to do"
    assert await _read(migrated, _schema) == expected


async def test_a_database_made_by_create_all_is_recorded_at_head(
    new_database: NewDatabase, engines: Callable[[str], AsyncEngine]
) -> None:
    engine = engines(new_database())
    await _create_all(engine)
    async with engine.begin() as conn:
        await conn.execute(
            sa.text("INSERT INTO job_types (name, first_seen_at) VALUES ('resize', :now)"), {"now": 1.0}
        )
    report = await _upgrade(engine)
    assert (report.before, report.stamped, report.after, report.applied) == (None, HEAD, HEAD, ())
    assert report.lines() == [f"found tables made before migrations matching revision {HEAD}: recorded it"]
    await _assert_tables_match_the_models(engine, new_database, engines)
    async with engine.connect() as conn:
        assert (await conn.execute(sa.text("SELECT name FROM job_types"))).scalars().all() == ["resize"]
        assert (await conn.execute(sa.text("SELECT version_num FROM alembic_version"))).scalar() == HEAD


@pytest.mark.parametrize("revision", REVISIONS)
async def test_tables_made_before_migrations_are_recorded_at_the_revision_they_match(
    revision: str, new_database: NewDatabase, engines: Callable[[str], AsyncEngine]
) -> None:
    """As an older version's create_all made them: a revision's tables with no alembic_version."""
    engine = engines(new_database())
    await _to_revision(engine, revision)
    async with engine.begin() as conn:
        await conn.exec_driver_sql("DROP TABLE alembic_version")
        await conn.exec_driver_sql("INSERT INTO job_types (name, first_seen_at) VALUES ('resize', 1)")
    report = await _upgrade(engine)
    assert (report.before, report.stamped, report.after) == (None, revision, HEAD)
    assert _revisions(report) == REVISIONS[REVISIONS.index(revision) + 1 :]
    await _assert_tables_match_the_models(engine, new_database, engines)
    async with engine.connect() as conn:
        assert (await conn.exec_driver_sql("SELECT name FROM job_types")).scalars().all() == ["resize"]


# A first-release database's rows: two jobs naming blobs (one output is also an upload), one with a
# corrupt inputs value, an idempotency key, a key, an upload, a known type, an event, an agent.
_NOW = 1_700_000_000.0
_ENTRY = {"size": 1, "sha256": "0" * 64}
_OLD_ROWS = [
    (
        "INSERT INTO jobs (id, type, state, priority, params, meta, attempts, max_attempts, retry, labels,"
        " idempotency_key, inputs, outputs, created_at, ended_at, cancel_requested) VALUES ('done', 'noop',"
        " 'completed', 1, :params, '{}', 1, 3, '{}', '[]', 'order-7', :inputs, :outputs, :now, :now, false)",
        {
            "params": json.dumps({"n": 1}),
            "inputs": json.dumps([{"name": "in", "blob_key": "k-in", **_ENTRY}]),
            "outputs": json.dumps([{"name": "out", "blob_key": "k-up", **_ENTRY}]),
        },
    ),
    (
        "INSERT INTO jobs (id, type, state, priority, params, meta, attempts, max_attempts, retry, labels,"
        " inputs, outputs, created_at, cancel_requested)"
        " VALUES ('odd', 'noop', 'dead', 0, '{}', '{}', 1, 3, '{}', '[]', :inputs, '[]', :now, false)",
        {"inputs": json.dumps({"not": "a list"})},
    ),
    (
        "INSERT INTO api_keys (id, prefix, hash, role, name, created_at)"
        " VALUES ('client-1', 'tp_c_kkk', :hash, 'client', 'old', :now)",
        {"hash": "f" * 64},
    ),
    (
        "INSERT INTO uploads (id, name, blob_key, size, sha256, created_at)"
        " VALUES ('up-1', 'a.txt', 'k-up', 1, :sha, :created)",
        {"sha": "0" * 64, "created": _NOW - 60},
    ),
    ("INSERT INTO job_types (name, first_seen_at) VALUES ('resize', :now)", {}),
    ("INSERT INTO job_events (job_id, at, kind, attempt) VALUES ('done', :now, 'failed', 1)", {}),
    (
        "INSERT INTO workers (id, worker_type, task_types, labels, max_concurrent, registered_at,"
        " last_seen_at, draining) VALUES ('w-1', 'http', '[\"noop\"]', '[]', 2, :now, :now, false)",
        {},
    ),
]


async def _first_release_database(url: str, engine: AsyncEngine) -> None:
    """SQLite: the first release's own file (no alembic_version). PostgreSQL, which that release
    did not support: migrated to revision 0001. Then the rows above."""
    if url.startswith("sqlite"):
        with sqlite3.connect(url.removeprefix("sqlite:///")) as db:
            db.executescript(OLD_SCHEMA.read_text())
    else:
        await _to_revision(engine, "0001")
    async with engine.begin() as conn:
        for sql, values in _OLD_ROWS:
            await conn.execute(sa.text(sql), {"now": _NOW, **values})


async def test_a_first_release_database_is_upgraded_with_its_rows(
    new_database: NewDatabase, engines: Callable[[str], AsyncEngine]
) -> None:
    url = new_database()
    engine = engines(url)
    await _first_release_database(url, engine)
    report = await _upgrade(engine)
    expected_start = "0001" if url.startswith("postgresql") else None
    assert (report.before, report.after) == (expected_start, HEAD)
    assert report.stamped == (None if expected_start else "0001")
    assert _revisions(report) == REVISIONS[1:]
    await _assert_tables_match_the_models(engine, new_database, engines)

    async with engine.connect() as conn:

        async def rows(sql: str) -> list[tuple[Any, ...]]:
            return [tuple(row) for row in (await conn.execute(sa.text(sql))).all()]

        jobs = await rows(
            "SELECT id, namespace, state, idempotency_key, last_lease_token FROM jobs ORDER BY id"
        )
        assert jobs == [
            ("done", "default", "completed", "order-7", None),
            ("odd", "default", "dead", None, None),
        ]
        params = (await conn.execute(sa.text("SELECT params FROM jobs WHERE id = 'done'"))).scalar()
        assert (json.loads(params) if isinstance(params, str) else params) == {"n": 1}
        assert await rows("SELECT id, hash_scheme, salt, namespaces, name FROM api_keys") == [
            ("client-1", "sha256", None, "[]", "old")
        ]
        # Old uploads count from when they were uploaded, not from the upgrade.
        assert await rows("SELECT id, namespace, last_used_at FROM uploads") == [
            ("up-1", "default", _NOW - 60)
        ]
        assert await rows("SELECT name, last_seen_at FROM job_types") == [("resize", None)]
        assert await rows("SELECT job_id, kind FROM job_events") == [("done", "failed")]
        assert await rows("SELECT id, max_concurrent FROM workers") == [("w-1", 2)]
        # Every blob an upload or a job names is counted; the corrupt row names nothing.
        assert await rows("SELECT key, refs, created_at, stored_at FROM blobs ORDER BY key") == [
            ("k-in", 1, _NOW, _NOW),
            ("k-up", 2, _NOW - 60, _NOW - 60),
        ]
    # Idempotency keys became unique per namespace.
    insert = (
        "INSERT INTO jobs (id, namespace, type, state, priority, params, meta, attempts, max_attempts,"
        " retry, labels, idempotency_key, inputs, outputs, created_at, cancel_requested) VALUES"
        " (:id, :namespace, 'noop', 'queued', 1, '{}', '{}', 0, 3, '{}', '[]', 'order-7', '[]', '[]',"
        " :now, false)"
    )
    async with engine.begin() as conn:
        await conn.execute(sa.text(insert), {"id": "acme-job", "namespace": "acme", "now": _NOW})
    with pytest.raises(IntegrityError):
        async with engine.begin() as conn:
            await conn.execute(sa.text(insert), {"id": "again", "namespace": "default", "now": _NOW})
    # Event ids are stream resume points: one purged from the top is never handed out again.
    async with engine.begin() as conn:
        newest = (await conn.execute(sa.text("SELECT max(id) FROM job_events"))).scalar()
        await conn.execute(sa.text("DELETE FROM job_events WHERE id = :id"), {"id": newest})
        await conn.execute(
            sa.text("INSERT INTO job_events (job_id, at, kind, data) VALUES ('done', :now, 'state', NULL)"),
            {"now": _NOW},
        )
        assert (await conn.execute(sa.text("SELECT max(id) FROM job_events"))).scalar() > newest


async def test_tables_of_a_development_build_between_releases_are_completed(
    tmp_path: Path, engines: Callable[[str], AsyncEngine]
) -> None:
    """Namespaces had landed, blob counts and upload lifetimes not yet: revision 0002 adds only those."""
    url = f"sqlite:///{(tmp_path / 'taskpost.db').as_posix()}"
    engine = engines(url)
    await _to_revision(engine, "0002")
    async with engine.begin() as conn:
        for sql in (
            "DROP TABLE alembic_version",
            "DROP TABLE blobs",
            "DROP TABLE attempt_outputs",
            "DROP INDEX ix_uploads_last_used_at",
            "ALTER TABLE uploads DROP COLUMN last_used_at",
            "INSERT INTO uploads (id, namespace, name, blob_key, size, sha256, created_at)"
            f" VALUES ('up-1', 'acme', 'a.txt', 'k-up', 1, '{'0' * 64}', {_NOW})",
        ):
            await conn.exec_driver_sql(sql)
    report = await _upgrade(engine)
    assert report.stamped == "0001"
    assert _revisions(report) == REVISIONS[1:]
    reference = tmp_path / "reference.db"
    await _assert_tables_match_the_models(engine, lambda: f"sqlite:///{reference.as_posix()}", engines)
    async with engine.connect() as conn:
        upload = (await conn.exec_driver_sql("SELECT namespace, last_used_at FROM uploads")).one()
        assert tuple(upload) == ("acme", _NOW)
        assert (await conn.exec_driver_sql("SELECT key, refs FROM blobs")).all() == [("k-up", 1)]


async def test_two_coordinators_upgrading_one_postgresql_database_at_once_both_succeed(
    postgres_url: str,
) -> None:
    first, second = Database(postgres_url), Database(postgres_url)
    watcher = create_async_engine(driver_url(postgres_url))
    try:
        async with first.write() as conn:
            report = await conn.run_sync(migrate.upgrade_to_head)
            # The second starts while the first has upgraded but not committed: it must wait.
            waiting = asyncio.create_task(second.upgrade_schema())
            await eventually(lambda: _lock_waits(watcher), "the second upgrade to wait for a lock")
            assert not waiting.done()
        late = await waiting
    finally:
        await watcher.dispose()
        await first.close()
        await second.close()
    assert _revisions(report) == REVISIONS
    assert (late.before, late.after, late.stamped, late.applied) == (HEAD, HEAD, None, ())


async def _lock_waits(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        waits = await conn.exec_driver_sql("SELECT count(*) FROM pg_locks WHERE NOT granted")
        return int(waits.scalar_one())


async def test_with_auto_migrate_off_an_outdated_database_is_refused_until_upgraded(
    new_database: NewDatabase, engines: Callable[[str], AsyncEngine]
) -> None:
    url = new_database()
    await _to_revision(engines(url), "0002")
    database = Database(url)
    try:
        with pytest.raises(SchemaNotCurrent, match="run `taskpost db upgrade`") as refused:
            await database.create_schema(auto_migrate=False)
        assert str(refused.value).startswith(
            f"the database is at revision 0002 and this version needs revision {HEAD}"
        )
        assert (await database.schema_state()).current == "0002"  # nothing was changed
        await database.create_schema()
        await database.create_schema(auto_migrate=False)
        assert (await database.schema_state()).at_head
    finally:
        await database.close()


async def test_a_coordinator_with_auto_migrate_off_does_not_start_on_an_empty_database(
    tmp_path: Path,
) -> None:
    settings = make_settings(tmp_path / "data").model_copy(update={"auto_migrate": False})
    coord = Coordinator.from_settings(settings)
    app = create_app(settings, coord)
    try:
        with pytest.raises(SchemaNotCurrent, match="taskpost db upgrade"):
            async with app.router.lifespan_context(app):
                pass
    finally:
        await coord.db.close()  # the app closes it on shutdown, which a failed start never reaches
    async with running_api(make_settings(tmp_path / "data"), ManualClock()) as api:
        assert (await api.coord.db.schema_state()).at_head
    async with running_api(settings, ManualClock()) as api:  # now at head: it starts
        assert (await api.submit())["state"] == "queued"


async def test_a_database_a_newer_version_upgraded_is_refused_not_touched(
    tmp_path: Path, engines: Callable[[str], AsyncEngine]
) -> None:
    engine = engines(f"sqlite:///{(tmp_path / 'taskpost.db').as_posix()}")
    await _upgrade(engine)
    async with engine.begin() as conn:
        await conn.exec_driver_sql("UPDATE alembic_version SET version_num = '9999'")
    async with engine.connect() as conn:
        state = await conn.run_sync(migrate.schema_state)
    assert (state.current, state.known, state.at_head) == ("9999", False, False)
    assert "a newer version of Taskpost upgraded this database" in state.describe()
    with pytest.raises(SchemaNotCurrent, match="unknown to this version"):
        await _upgrade(engine)
    async with engine.connect() as conn:
        assert (await conn.exec_driver_sql("SELECT version_num FROM alembic_version")).scalar() == "9999"
