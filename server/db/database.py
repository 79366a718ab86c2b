"""The coordinator's connection to its database: engine, dialect and schema."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlmodel import SQLModel

from server.db import models as _models  # noqa: F401  (registers the tables)
from server.db.dialects import Dialect, dialect_for_url


class Database:
    """An engine plus the dialect that knows how to write to it."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.dialect: Dialect = dialect_for_url(url)
        _ensure_sqlite_directory(url)
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
        async with self.write() as conn:
            await conn.run_sync(SQLModel.metadata.create_all)

    async def ping(self) -> bool:
        try:
            async with self.read() as conn:
                await conn.exec_driver_sql("SELECT 1")
        except Exception:
            return False
        return True

    async def close(self) -> None:
        await self.engine.dispose()


def _ensure_sqlite_directory(url: str) -> None:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
