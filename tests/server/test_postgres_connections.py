"""Connecting to PostgreSQL: the URL forms users write, the pool and timeout settings, and what
counts as the database being unavailable (a connection that cannot be had) or not (a query)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from taskpost.server.db.database import Database
from taskpost.server.db.dialects import ConnectionOptions, dialect_for_url, driver_url
from taskpost.server.errors import DatabaseUnavailable
from taskpost.server.settings import Settings

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("scheme", ["postgresql", "postgres", "postgresql+asyncpg"])
async def test_each_postgresql_url_form_reaches_the_database(postgres_url: str, scheme: str) -> None:
    url = scheme + "://" + postgres_url.split("://", 1)[1]
    database = Database(url)
    try:
        assert database.url.startswith("postgresql+asyncpg://")
        assert database.dialect.name == "postgresql" and database.dialect.locks_rows
        async with database.read() as conn:
            assert (await conn.execute(text("SELECT current_database()"))).scalar_one() in url
    finally:
        await database.close()


def test_sqlite_urls_get_the_async_driver_and_keep_their_dialect() -> None:
    assert driver_url("sqlite:///data/taskpost.db") == "sqlite+aiosqlite:///data/taskpost.db"
    assert driver_url("sqlite+aiosqlite:///x.db") == "sqlite+aiosqlite:///x.db"
    dialect = dialect_for_url("sqlite:///x.db")
    assert dialect.name == "sqlite" and not dialect.locks_rows


@pytest.mark.parametrize(
    "url",
    ["mysql://app:s3cret@db/jobs", "postgresql+psycopg2://app:s3cret@db/jobs", "app:s3cret@db/jobs"],
)
def test_an_unknown_url_is_refused_naming_the_accepted_forms_and_not_the_password(url: str) -> None:
    with pytest.raises(ValueError, match="unsupported database URL") as refused:
        dialect_for_url(url)
    message = str(refused.value)
    assert "postgresql://" in message and "sqlite" in message
    assert "s3cret" not in message


async def test_postgresql_has_no_process_wide_write_lock(postgres_url: str) -> None:
    database = Database(postgres_url)
    try:
        async with database.write() as first:
            await first.execute(text("CREATE TABLE counters (n int)"))
            # SQLite would queue this write behind the open one (here: for ever); PostgreSQL
            # runs both at once.
            async with asyncio.timeout(30), database.write() as second:
                assert (await second.execute(text("SELECT 1"))).scalar_one() == 1
    finally:
        await database.close()


async def test_the_statement_timeout_is_set_on_the_server_and_is_a_query_error(postgres_url: str) -> None:
    settings = Settings(database_url=postgres_url, db_statement_timeout_s=0.2, _env_file=None)
    database = Database.from_settings(settings)
    try:
        async with database.read() as conn:
            assert (await conn.execute(text("SHOW statement_timeout"))).scalar_one() == "200ms"
        with pytest.raises(DBAPIError, match="statement timeout"):
            async with database.read() as conn:
                await conn.execute(text("SELECT pg_sleep(30)"))
        async with database.read() as conn:  # the connection was not lost
            assert (await conn.execute(text("SELECT 1"))).scalar_one() == 1
    finally:
        await database.close()


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port on 127.0.0.1 that takes connections and never answers (a server gone quiet)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield listener.getsockname()[1]


async def test_a_server_that_never_answers_is_unavailable_after_the_connect_timeout(
    silent_port: int,
) -> None:
    options = ConnectionOptions(connect_timeout_s=0.3)
    database = Database(f"postgresql://taskpost@127.0.0.1:{silent_port}/taskpost", options)
    try:
        with pytest.raises(DatabaseUnavailable):
            async with asyncio.timeout(30):  # a guard for the test, far above the setting
                async with database.read():
                    pass
        assert not await database.ping()
    finally:
        await database.close()


async def test_a_refused_connection_is_unavailable_and_other_errors_are_not(postgres_url: str) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    refused = Database(f"postgresql://taskpost@127.0.0.1:{closed_port}/taskpost")
    working = Database(postgres_url)
    try:
        with pytest.raises(DatabaseUnavailable):
            async with refused.write():
                pass
        with pytest.raises(DBAPIError, match="does not exist"):
            async with working.read() as conn:
                await conn.execute(text("SELECT * FROM no_such_table"))
        with pytest.raises(OSError, match="a blob store failed"):
            async with working.write():
                raise OSError("a blob store failed")  # inside the block: not the database's
    finally:
        await refused.close()
        await working.close()
