"""The coordinator's connection to its database: engine, dialect and schema."""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from taskpost.server.db import migrate
from taskpost.server.db import models as _models  # noqa: F401  (registers the tables)
from taskpost.server.db.dialects import ConnectionOptions, Dialect, dialect_for_url, driver_url
from taskpost.server.db.dialects.base import ONE_STATEMENT_OPTION
from taskpost.server.db.transactions import TransactionEnds
from taskpost.server.db.unavailable import unavailable_on_connection_errors

if TYPE_CHECKING:
    from taskpost.server.settings import Settings

logger = logging.getLogger(__name__)

PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600


class Database:
    """An engine plus the dialect that knows how to write to it.

    Every transaction comes from ``read`` or ``write``: when the database cannot be reached
    there, they raise ``DatabaseUnavailable`` (server.db.unavailable), which the API answers
    with 503; the next transaction tries again, so the process recovers by itself.
    """

    def __init__(self, url: str, options: ConnectionOptions | None = None) -> None:
        self.url = driver_url(url)
        self.dialect: Dialect = dialect_for_url(self.url)
        self.options = options or ConnectionOptions()
        _prepare_sqlite_file(self.url)
        self.engine: AsyncEngine = create_async_engine(self.url, **self.dialect.engine_options(self.options))
        self.dialect.prepare_engine(self.engine)
        self.ends = TransactionEnds()

    @classmethod
    def from_settings(cls, settings: Settings) -> Database:
        """The database of ``settings``, with its pool and timeout settings (``TASKPOST_DB_*``)."""
        options = ConnectionOptions(
            pool_size=settings.db_pool_size,
            max_overflow=settings.db_max_overflow,
            pool_timeout_s=settings.db_pool_timeout_s,
            connect_timeout_s=settings.db_connect_timeout_s,
            statement_timeout_s=settings.db_statement_timeout_s,
        )
        return cls(settings.resolved_database_url(), options)

    def write(self) -> AbstractAsyncContextManager[AsyncConnection]:
        """A transaction that may write; committed when the block ends without error."""
        return unavailable_on_connection_errors(self.dialect.write(self.engine, self.ends), self.options)

    def read(self) -> AbstractAsyncContextManager[AsyncConnection]:
        """A transaction that only reads."""
        return unavailable_on_connection_errors(self._read(), self.options)

    def read_statement(self) -> AbstractAsyncContextManager[AsyncConnection]:
        """A connection for reads that need no common snapshot: each statement is a transaction
        of its own, which spares a lookup (the API key of every request) its BEGIN and COMMIT."""
        return unavailable_on_connection_errors(self._read(**{ONE_STATEMENT_OPTION: True}), self.options)

    @asynccontextmanager
    async def _read(self, **execution_options: Any) -> AsyncIterator[AsyncConnection]:
        async with self.ends.transaction(self.engine, **execution_options) as conn:
            yield conn

    async def create_schema(self, *, auto_migrate: bool = True) -> None:
        """Bring the tables to this version's revision (server.db.migrate), saying what changed.

        With ``auto_migrate`` off (TASKPOST_AUTO_MIGRATE=false) nothing is changed: a database
        that is not at that revision raises ``SchemaNotCurrent``.
        """
        if not auto_migrate:
            async with self.read() as conn:
                await conn.run_sync(migrate.require_head)
            return
        report = await self.upgrade_schema()
        for line in report.lines():
            logger.info("%s", line, extra={"action": "schema_upgrade"})

    async def upgrade_schema(self) -> migrate.UpgradeReport:
        """Upgrade the tables to head in one write transaction (``taskpost db upgrade``)."""
        async with self.write() as conn:
            return await conn.run_sync(migrate.upgrade_to_head)

    async def schema_state(self) -> migrate.SchemaState:
        """Where the tables stand against this version's revisions (``taskpost db current``)."""
        async with self.read() as conn:
            return await conn.run_sync(migrate.schema_state)

    async def ping(self) -> bool:
        """Whether a query goes through now."""
        try:
            async with self.read() as conn:
                await conn.exec_driver_sql("SELECT 1")
        except Exception as exc:
            logger.debug("database ping failed: %s", exc, extra={"action": "db_ping"})
            return False
        return True

    async def close(self) -> None:
        await self.ends.wait_all()
        await self.engine.dispose()


def _prepare_sqlite_file(url: str) -> None:
    """Create the database file 0600 in a 0700 directory before SQLite opens it.

    SQLite creates its -wal and -shm files with the database file's mode, so they are private
    too; files an earlier version left readable are made private here.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return
    path = Path(parsed.database)
    make_private_dir(path.parent)
    os.close(os.open(path, os.O_CREAT | os.O_RDWR, PRIVATE_FILE_MODE))
    for file in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        if file.exists():
            file.chmod(PRIVATE_FILE_MODE)


def make_private_dir(path: Path) -> None:
    """``mkdir -p`` whose last folder, when created here, only its owner may enter."""
    try:
        path.mkdir(parents=True, mode=PRIVATE_DIR_MODE)
    except FileExistsError:
        return
    path.chmod(PRIVATE_DIR_MODE)  # mkdir's mode is masked by the umask
