"""The storage dialect contract."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import Float, Insert, Integer, String, Table, column
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql.elements import ColumnClause
from sqlalchemy.sql.selectable import TextualSelect

from taskpost.server.db.transactions import TransactionEnds

# What a claim returns. The JSON columns come back as their stored text: the claim decodes each
# row on its own, so that one row that cannot be read does not fail the claim of the others.
CLAIM_RETURNING: tuple[ColumnClause[object], ...] = (
    column("id", String),
    column("type", String),
    column("params", String),
    column("meta", String),
    column("priority", Integer),
    column("attempts", Integer),
    column("max_attempts", Integer),
    column("timeout_s", Float),
    column("inputs", String),
    column("lease_token", String),
    # For the wait a claim ends (metrics, the state event): since submit on a first attempt.
    column("created_at", Float),
    column("namespace", String),
)
CLAIM_RETURNING_SQL = ", ".join(c.name for c in CLAIM_RETURNING)


ONE_STATEMENT_OPTION = "taskpost_one_statement"
"""Execution option of ``Database.read_statement``: each statement is its own transaction, so
a dialect that opens transactions itself (SQLite's BEGIN) need not."""


@dataclass(frozen=True)
class ConnectionOptions:
    """How the coordinator connects: its pool and timeouts (``TASKPOST_DB_*`` settings)."""

    pool_size: int = 10
    """Connections kept open."""
    max_overflow: int = 10
    """Connections opened past ``pool_size`` under load, closed when returned."""
    pool_timeout_s: float = 10.0
    """How long a request waits for a free connection before it is refused (503)."""
    connect_timeout_s: float = 5.0
    """How long opening a connection may take (PostgreSQL)."""
    statement_timeout_s: float = 30.0
    """The server cancels a statement that runs longer (PostgreSQL); 0: no limit."""


class Dialect(Protocol):
    """What the job service needs from a SQL database beyond portable SQLAlchemy Core."""

    name: str
    locks_rows: bool
    """Whether reads of rows about to change must take row locks (SELECT ... FOR UPDATE)."""

    def engine_options(self, options: ConnectionOptions) -> dict[str, Any]:
        """Keyword arguments of ``create_async_engine`` for this database: pool, driver settings."""

    def prepare_engine(self, engine: AsyncEngine) -> None:
        """Install connection settings (pragmas, transaction mode) on a new engine."""

    def write(
        self, engine: AsyncEngine, ends: TransactionEnds
    ) -> AbstractAsyncContextManager[AsyncConnection]:
        """A connection inside a transaction that may write, committed on success (through ``ends``)."""

    def claim_statement(self, *, type_count: int, with_labels: bool, namespace_count: int) -> TextualSelect:
        """UPDATE ... RETURNING that leases up to ``:limit`` queued jobs to ``:worker_id``.

        Bind parameters: worker_id, now, lease_expires_at, limit, worker_type, type_0..type_N,
        ``worker_labels`` (a JSON array) when ``with_labels``, and namespace_0..namespace_M when
        ``namespace_count`` > 0 (a worker key restricted to those namespaces; 0: all). A job
        whose ``declined_by`` names ``worker_id`` is skipped. Each leased row gets its own
        random lease token. Returns id, type, params, meta, priority,
        attempts, max_attempts, timeout_s, inputs, lease_token (JSON columns as their text).
        """

    def insert_ignoring_duplicates(self, table: Table) -> Insert:
        """``INSERT`` that skips rows whose primary or unique key exists (one another writer may
        have inserted meanwhile), instead of failing the transaction."""
