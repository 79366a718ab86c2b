"""aiosqlite with one thread hop per statement, for SQLAlchemy's aiosqlite dialect.

aiosqlite runs each call of a cursor on its connection's thread: SQLAlchemy's adapter makes
four of them for every statement (open a cursor, execute, fetch the rows, close), and a commit
or rollback is one more even when no transaction is open. Each hop is a wake-up of that thread
and of the event loop; on a busy machine a hop costs far more than the statement itself.

``OneHopConnection`` keeps aiosqlite's thread and queue but runs a whole statement (execute,
fetch every row, close) in one hop, and skips commit and rollback when SQLite has no
transaction open. SQLAlchemy's adapter fetches every row of a result before it returns anyway,
so nothing is read earlier than it was.
"""

from __future__ import annotations

import sqlite3
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import aiosqlite

_Outcome = tuple[list[Any], Any, int, int | None]


def _run(connection: sqlite3.Connection, sql: str, parameters: Any, many: bool) -> _Outcome:
    """On the connection's thread: the statement's rows, description, rowcount and lastrowid."""
    cursor = connection.cursor()
    try:
        if many:
            cursor.executemany(sql, parameters)
        else:
            cursor.execute(sql, parameters)
        # rowcount of an UPDATE ... RETURNING is final only once every row is fetched.
        rows = cursor.fetchall() if cursor.description else []
        return rows, cursor.description, cursor.rowcount, cursor.lastrowid
    finally:
        cursor.close()


class OneHopCursor:
    """The aiosqlite cursor interface over rows fetched with the statement."""

    arraysize = 1

    def __init__(self, connection: OneHopConnection) -> None:
        self._connection = connection
        self._rows: deque[Any] = deque()
        self.description: Any = None
        self.rowcount = -1
        self.lastrowid: int | None = None

    async def __aenter__(self) -> OneHopCursor:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def execute(self, sql: str, parameters: Sequence[Any] | dict[str, Any] = ()) -> OneHopCursor:
        return self._keep(await self._connection.run_statement(sql, parameters, many=False))

    async def executemany(self, sql: str, parameters: Iterable[Any]) -> OneHopCursor:
        return self._keep(await self._connection.run_statement(sql, list(parameters), many=True))

    def _keep(self, outcome: _Outcome) -> OneHopCursor:
        rows, self.description, self.rowcount, self.lastrowid = outcome
        self._rows = deque(rows)
        return self

    async def fetchone(self) -> Any:
        return self._rows.popleft() if self._rows else None

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        count = self.arraysize if size is None else size
        return [self._rows.popleft() for _ in range(min(count, len(self._rows)))]

    async def fetchall(self) -> list[Any]:
        rows = list(self._rows)
        self._rows.clear()
        return rows

    async def close(self) -> None:
        self._rows.clear()


class OneHopConnection(aiosqlite.Connection):
    """aiosqlite's connection, with statements run in one hop (see the module's docstring)."""

    def cursor(self) -> OneHopCursor:  # type: ignore[override]
        return OneHopCursor(self)

    async def run_statement(self, sql: str, parameters: Any, *, many: bool) -> _Outcome:
        outcome: _Outcome = await self._execute(_run, self._conn, sql, parameters, many)  # type: ignore[no-untyped-call]
        return outcome

    async def commit(self) -> None:
        if self._conn.in_transaction:
            await super().commit()

    async def rollback(self) -> None:
        if self._conn.in_transaction:
            await super().rollback()


def one_hop_connector(connect: Callable[[], sqlite3.Connection]) -> Callable[[], Any]:
    """An ``async_creator`` for ``create_async_engine``: opens a ``OneHopConnection``."""

    async def open_connection() -> OneHopConnection:
        connection = OneHopConnection(connect, iter_chunk_size=64)
        connection._thread.daemon = True  # as SQLAlchemy does for aiosqlite's own connections
        await connection
        return connection

    return open_connection
