"""Transactions that end cleanly even when the request that opened them is cancelled.

Starlette runs each request in an anyio cancel scope, whose cancellation is delivered again at
every await. If that lands inside SQLAlchemy's own rollback or close, SQLAlchemy gives up on the
connection and schedules a close task that nothing keeps alive: the driver's connection may then
stay open in the middle of its transaction. On SQLite that connection keeps the write lock, and
every later write waits out ``busy_timeout`` and fails with "database is locked".

So the end of every transaction (commit or rollback, then returning the connection) runs in a
task of its own, which a cancellation of the caller cannot interrupt; the caller still sees its
``CancelledError``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine


class TransactionEnds:
    """Holds the tasks that finish transactions until they are done (asyncio keeps weak references)."""

    def __init__(self) -> None:
        self._pending: set[asyncio.Task[None]] = set()

    @asynccontextmanager
    async def transaction(
        self, engine: AsyncEngine, **execution_options: Any
    ) -> AsyncIterator[AsyncConnection]:
        """A connection in a transaction, committed when the block ends without error."""
        conn = await engine.connect()
        try:
            if execution_options:
                conn = await conn.execution_options(**execution_options)
            await conn.begin()
        except BaseException:
            await self._finish(_end(conn, commit=False))
            raise
        try:
            yield conn
        except BaseException:
            await self._finish(_end(conn, commit=False))
            raise
        await self._finish(_end(conn, commit=True))

    async def _finish(self, ending: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(ending)
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)
        await asyncio.shield(task)

    async def wait_all(self) -> None:
        """Wait for transactions still ending (before the engine is disposed)."""
        if self._pending:
            await asyncio.wait(set(self._pending))


async def _end(conn: AsyncConnection, *, commit: bool) -> None:
    try:
        if conn.in_transaction():
            await (conn.commit() if commit else conn.rollback())
    finally:
        await conn.close()
