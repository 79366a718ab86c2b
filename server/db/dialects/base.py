"""The storage dialect contract."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import Protocol

from sqlalchemy import Connection, Float, Integer, String, column
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql.elements import ColumnClause
from sqlalchemy.sql.selectable import TextualSelect

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
)
CLAIM_RETURNING_SQL = ", ".join(c.name for c in CLAIM_RETURNING)


class Dialect(Protocol):
    """What the job service needs from a SQL database beyond portable SQLAlchemy Core."""

    name: str
    locks_rows: bool
    """Whether reads of rows about to change must take row locks (SELECT ... FOR UPDATE)."""

    def prepare_engine(self, engine: AsyncEngine) -> None:
        """Install connection settings (pragmas, transaction mode) on a new engine."""

    def write(self, engine: AsyncEngine) -> AbstractAsyncContextManager[AsyncConnection]:
        """A connection inside a transaction that may write, committed on success."""

    def claim_statement(self, *, type_count: int, with_labels: bool, namespace_count: int) -> TextualSelect:
        """UPDATE ... RETURNING that leases up to ``:limit`` queued jobs to ``:worker_id``.

        Bind parameters: worker_id, now, lease_expires_at, limit, worker_type, type_0..type_N,
        ``worker_labels`` (a JSON array) when ``with_labels``, and namespace_0..namespace_M when
        ``namespace_count`` > 0 (a worker key restricted to those namespaces; 0: all). Each
        leased row gets its own random lease token. Returns id, type, params, meta, priority,
        attempts, max_attempts, timeout_s, inputs, lease_token (JSON columns as their text).
        """

    def upgrade_schema(self, conn: Connection) -> list[str]:
        """Bring tables made by an earlier version up to the current models; say what changed.

        Runs before ``create_all`` (through ``run_sync``), inside the schema transaction.
        """
