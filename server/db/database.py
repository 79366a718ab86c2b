"""The coordinator's connection to its database: engine, dialect and schema."""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

from sqlalchemy import Connection
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlmodel import SQLModel

from server.db import models as _models  # noqa: F401  (registers the tables)
from server.db.dialects import Dialect, dialect_for_url

logger = logging.getLogger(__name__)

PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600


class Database:
    """An engine plus the dialect that knows how to write to it."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.dialect: Dialect = dialect_for_url(url)
        _prepare_sqlite_file(url)
        self.engine: AsyncEngine = create_async_engine(url, pool_pre_ping=False)
        self.dialect.prepare_engine(self.engine)

    def write(self) -> AbstractAsyncContextManager[AsyncConnection]:
        """A transaction that may write; committed when the block ends without error."""
        return self.dialect.write(self.engine)

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A read-only transaction (a consistent snapshot)."""
        async with self.engine.connect() as conn, conn.begin():
            yield conn

    async def create_schema(self) -> None:
        """Create missing tables, after upgrading those an earlier version made."""
        async with self.write() as conn:
            changes = await conn.run_sync(self._upgrade_then_create)
        for change in changes:
            logger.info("upgraded the database: %s", change, extra={"action": "schema_upgrade"})

    def _upgrade_then_create(self, conn: Connection) -> list[str]:
        changes = self.dialect.upgrade_schema(conn)
        SQLModel.metadata.create_all(conn)
        return changes

    async def ping(self) -> bool:
        try:
            async with self.read() as conn:
                await conn.exec_driver_sql("SELECT 1")
        except Exception:
            return False
        return True

    async def close(self) -> None:
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
