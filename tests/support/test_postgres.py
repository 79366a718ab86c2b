"""The test PostgreSQL cluster (tests/support/postgres.py) and the database fixtures built on it."""

from __future__ import annotations

import os
import pwd
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from taskpost.server.db.database import Database
from tests.support.postgres import SERVER_USER, PostgresCluster

asyncpg = pytest.importorskip("asyncpg", reason="asyncpg comes with the extra postgres")

pytestmark = pytest.mark.anyio


async def test_postgres_url_is_a_fresh_writable_database(postgres_url: str) -> None:
    conn = await asyncpg.connect(postgres_url)
    try:
        assert await conn.fetchval("SELECT current_database()") == urlsplit(postgres_url).path[1:]
        tables = await conn.fetchval("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
        assert tables == 0
        await conn.execute("CREATE TABLE t (id int PRIMARY KEY, name text)")
        await conn.execute("INSERT INTO t VALUES (1, 'one')")
        assert await conn.fetchval("SELECT name FROM t WHERE id = 1") == "one"
    finally:
        await conn.close()


async def test_databases_are_separate_and_dropped(postgres_cluster: PostgresCluster) -> None:
    first, second = postgres_cluster.create_database(), postgres_cluster.create_database()
    try:
        assert first != second
        conn = await asyncpg.connect(first)
        await conn.execute("CREATE TABLE only_in_first (id int)")
        await conn.close()
        conn = await asyncpg.connect(second)
        try:
            assert await conn.fetchval("SELECT to_regclass('only_in_first')") is None
        finally:
            await conn.close()
        # Dropped even with a connection still open on it, as a test that forgot one leaves it.
        lingering = await asyncpg.connect(first)
        postgres_cluster.drop_database(first)
        assert not postgres_cluster.database_exists(first)
        assert lingering.is_closed() or not await _usable(lingering)
    finally:
        postgres_cluster.drop_database(first)
        postgres_cluster.drop_database(second)
    assert not postgres_cluster.database_exists(second)


async def _usable(conn: asyncpg.Connection) -> bool:
    try:
        await conn.fetchval("SELECT 1")
    except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
        return False
    finally:
        conn.terminate()
    return True


async def test_an_owned_cluster_listens_on_loopback_only_as_the_postgres_user(
    postgres_restartable: PostgresCluster, postgres_url: str
) -> None:
    conn = await asyncpg.connect(postgres_url)
    try:
        assert await conn.fetchval("SHOW listen_addresses") == "127.0.0.1"
        assert await conn.fetchval("SHOW fsync") == "off"
    finally:
        await conn.close()
    postmaster_pid = int(postgres_restartable.pid_file.read_text().splitlines()[0])
    expected = pwd.getpwnam(SERVER_USER).pw_uid if os.geteuid() == 0 else os.geteuid()
    assert _process_uid(postmaster_pid) == expected


def _process_uid(pid: int) -> int:
    status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    return int(status["Uid"].split()[0])


async def test_a_stopped_cluster_refuses_connections_and_keeps_its_data(
    postgres_restartable: PostgresCluster, postgres_url: str
) -> None:
    conn = await asyncpg.connect(postgres_url)
    await conn.execute("CREATE TABLE kept (id int); INSERT INTO kept VALUES (7)")
    await conn.close()
    with postgres_restartable.stopped():
        assert not postgres_restartable.running()
        with pytest.raises(OSError):
            await asyncpg.connect(postgres_url, timeout=5)
    assert postgres_restartable.running()
    conn = await asyncpg.connect(postgres_url)
    try:
        assert await conn.fetchval("SELECT id FROM kept") == 7
    finally:
        await conn.close()


async def test_database_url_works_with_the_coordinators_database(database_url: str) -> None:
    database = Database(database_url)
    try:
        await database.create_schema()
        assert await database.ping()
    finally:
        await database.close()


def test_a_cluster_left_by_a_killed_run_is_stopped_by_the_next(postgres_cluster: PostgresCluster) -> None:
    made_by_a_killed_run = subprocess.run(
        [
            sys.executable,
            "-c",
            "from tests.support.postgres import PostgresCluster; print(PostgresCluster.create().root)",
        ],
        check=True,
        capture_output=True,
        text=True,
    )  # the child exits without destroying its cluster, as a SIGKILLed pytest would
    orphan = PostgresCluster("", postgres_cluster.bin_dir, Path(made_by_a_killed_run.stdout.strip()))
    assert orphan.running()
    server_pid = int(orphan.pid_file.read_text().splitlines()[0])

    PostgresCluster.create().destroy()

    assert orphan.root is not None and not orphan.root.exists()
    assert not _alive(server_pid)
    assert postgres_cluster.running(), "a cluster whose owner still runs is left alone"


def _alive(pid: int) -> bool:
    """Whether the process runs (a zombie does not: a container's init may never reap it)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"
