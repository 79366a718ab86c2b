"""SQLite: WAL, one writer at a time inside this process, BEGIN IMMEDIATE for writes."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import Insert, Table, event, text
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql.selectable import TextualSelect

from taskpost.server.db.dialects.base import (
    CLAIM_RETURNING,
    CLAIM_RETURNING_SQL,
    ONE_STATEMENT_OPTION,
    ConnectionOptions,
)
from taskpost.server.db.dialects.sqlite_driver import one_hop_connector
from taskpost.server.db.transactions import TransactionEnds

_WRITE_OPTION = "taskpost_write"


class SqliteDialect:
    """The embedded default. A single coordinator process owns the file."""

    name = "sqlite"
    locks_rows = False  # one writer at a time already

    def __init__(self) -> None:
        # SQLite has one writer; queueing writers here is cheaper than letting them spin on
        # SQLITE_BUSY. Other processes (the CLI) are covered by busy_timeout.
        self._write_lock = asyncio.Lock()
        self._claim_cache: dict[tuple[int, bool, int], TextualSelect] = {}
        self._connect_args: tuple[list[Any], dict[str, Any]] | None = None

    def engine_options(self, options: ConnectionOptions) -> dict[str, Any]:
        # The file is local: no connect or statement timeout to set, and nothing to ping.
        return {
            "pool_size": options.pool_size,
            "max_overflow": options.max_overflow,
            "pool_timeout": options.pool_timeout_s,
            "async_creator": one_hop_connector(self._connect),
        }

    def _connect(self) -> sqlite3.Connection:
        """On the connection's thread: the file SQLAlchemy would have opened, as it would."""
        assert self._connect_args is not None, "prepare_engine() comes before the first connection"
        args, kwargs = self._connect_args
        # The loop's thread reads in_transaction (sqlite_driver): no other use crosses threads.
        connection: sqlite3.Connection = sqlite3.connect(*args, **{**kwargs, "check_same_thread": False})
        return connection

    def prepare_engine(self, engine: AsyncEngine) -> None:
        sync_engine = engine.sync_engine
        args, kwargs = sync_engine.dialect.create_connect_args(sync_engine.url)
        self._connect_args = (list(args), dict(kwargs))

        @event.listens_for(sync_engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: Any) -> None:
            # Take transaction control away from the driver so BEGIN is ours to issue.
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA busy_timeout=10000")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        @event.listens_for(sync_engine, "begin")
        def _on_begin(connection: Any) -> None:
            options = connection.get_execution_options()
            if options.get(ONE_STATEMENT_OPTION, False):
                return  # SQLite runs a statement outside BEGIN in a transaction of its own
            connection.exec_driver_sql("BEGIN IMMEDIATE" if options.get(_WRITE_OPTION, False) else "BEGIN")

    @asynccontextmanager
    async def write(self, engine: AsyncEngine, ends: TransactionEnds) -> AsyncIterator[AsyncConnection]:
        async with self._write_lock, ends.transaction(engine, **{_WRITE_OPTION: True}) as conn:
            yield conn

    def claim_statement(self, *, type_count: int, with_labels: bool, namespace_count: int) -> TextualSelect:
        cache_key = (type_count, with_labels, namespace_count)
        statement = self._claim_cache.get(cache_key)
        if statement is None:
            sql = _claim_sql(type_count, with_labels, namespace_count)
            statement = text(sql).columns(*CLAIM_RETURNING)
            self._claim_cache[cache_key] = statement
        return statement

    def insert_ignoring_duplicates(self, table: Table) -> Insert:
        return sqlite_insert(table).on_conflict_do_nothing()


def _claim_sql(type_count: int, with_labels: bool, namespace_count: int) -> str:
    types = ", ".join(f":type_{i}" for i in range(type_count))
    if namespace_count:
        # The unary + keeps SQLite from walking the namespace index instead of ix_jobs_claim,
        # which would need a sort for the ORDER BY: the namespace only filters the rows.
        names = ", ".join(f":namespace_{i}" for i in range(namespace_count))
        namespaces = f"+j.namespace IN ({names})"
    else:
        namespaces = "1"
    if with_labels:
        labels = (
            "(j.labels = '[]' OR NOT EXISTS (SELECT 1 FROM json_each(j.labels) AS l"
            " WHERE l.value NOT IN (SELECT value FROM json_each(:worker_labels))))"
        )
    else:
        labels = "j.labels = '[]'"
    # Not to an agent that declined the job (server.services.declines); most rows have none.
    declined = (
        "(j.declined_by IS NULL OR NOT EXISTS (SELECT 1 FROM json_each(j.declined_by) AS d"
        " WHERE json_extract(d.value, '$.worker_id') = :worker_id))"
    )
    return f"""
UPDATE jobs SET
    state = 'processing',
    attempts = attempts + 1,
    worker_id = :worker_id,
    lease_token = lower(hex(randomblob(16))),
    lease_expires_at = :lease_expires_at,
    attempt_started_at = :now,
    started_at = coalesce(started_at, :now),
    available_at = NULL,
    progress = NULL,
    progress_message = NULL
WHERE seq IN (
    SELECT j.seq FROM jobs AS j
    WHERE j.state = 'queued'
      AND j.type IN ({types})
      AND (j.worker_type IS NULL OR j.worker_type = :worker_type)
      AND {labels}
      AND {namespaces}
      AND {declined}
    ORDER BY j.priority DESC, j.seq
    LIMIT :limit
)
RETURNING {CLAIM_RETURNING_SQL}
"""
