"""PostgreSQL through asyncpg: row locks instead of a process-wide write lock, SKIP LOCKED claims.

Several coordinator processes may share one database: every write is a transaction of its own,
rows about to change are read with ``SELECT ... FOR UPDATE`` (``locks_rows``), and a claim skips
the rows another claim holds instead of waiting for them.
"""

from __future__ import annotations

import importlib.util
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import JSON, Insert, Table, text
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql.selectable import TextualSelect

from taskpost.server.db.dialects.base import CLAIM_RETURNING, ConnectionOptions
from taskpost.server.db.models import Job
from taskpost.server.db.transactions import TransactionEnds

_JOBS = Job.__table__  # type: ignore[attr-defined]
_APPLICATION_NAME = "taskpost-coordinator"


class PostgresDialect:
    """PostgreSQL 13 or newer (``gen_random_uuid``), for one or several coordinator processes."""

    name = "postgresql"
    locks_rows = True

    def __init__(self) -> None:
        if importlib.util.find_spec("asyncpg") is None:
            raise ModuleNotFoundError(
                "a postgresql:// database needs the asyncpg driver: pip install 'taskpost[postgres]'"
            )
        self._claim_cache: dict[tuple[int, bool, int], TextualSelect] = {}

    def engine_options(self, options: ConnectionOptions) -> dict[str, Any]:
        return {
            "pool_size": options.pool_size,
            "max_overflow": options.max_overflow,
            "pool_timeout": options.pool_timeout_s,
            # A connection the server closed (a restart, a failover) is found out and replaced
            # when it is taken from the pool, so the first request after an outage succeeds.
            "pool_pre_ping": True,
            "connect_args": {
                "timeout": options.connect_timeout_s,
                "server_settings": {
                    "application_name": _APPLICATION_NAME,
                    "statement_timeout": str(round(options.statement_timeout_s * 1000)),
                },
            },
        }

    def prepare_engine(self, engine: AsyncEngine) -> None:
        """Nothing to add: asyncpg's defaults (READ COMMITTED, autocommit off) are what we want."""

    @asynccontextmanager
    async def write(self, engine: AsyncEngine, ends: TransactionEnds) -> AsyncIterator[AsyncConnection]:
        async with ends.transaction(engine) as conn:
            yield conn

    def claim_statement(self, *, type_count: int, with_labels: bool, namespace_count: int) -> TextualSelect:
        cache_key = (type_count, with_labels, namespace_count)
        statement = self._claim_cache.get(cache_key)
        if statement is None:
            statement = text(_claim_sql(type_count, with_labels, namespace_count)).columns(*CLAIM_RETURNING)
            self._claim_cache[cache_key] = statement
        return statement

    def insert_ignoring_duplicates(self, table: Table) -> Insert:
        return postgresql_insert(table).on_conflict_do_nothing()


def _returning() -> str:
    # asyncpg decodes json columns itself; the claim wants their text (see CLAIM_RETURNING).
    columns = []
    for column in CLAIM_RETURNING:
        if isinstance(_JOBS.c[column.name].type, JSON):
            columns.append(f"CAST({column.name} AS text) AS {column.name}")
        else:
            columns.append(column.name)
    return ", ".join(columns)


def _claim_sql(type_count: int, with_labels: bool, namespace_count: int) -> str:
    types = ", ".join(f":type_{i}" for i in range(type_count))
    if namespace_count:
        names = ", ".join(f":namespace_{i}" for i in range(namespace_count))
        namespaces = f"j.namespace IN ({names})"
    else:
        namespaces = "TRUE"
    if with_labels:
        # Every label of the job is one the agent has (jsonb array containment).
        labels = "(j.labels = '[]' OR CAST(j.labels AS jsonb) <@ CAST(:worker_labels AS jsonb))"
    else:
        labels = "j.labels = '[]'"
    # Not to an agent that declined the job (server.services.declines); most rows have none.
    declined = (
        "(j.declined_by IS NULL OR NOT CAST(j.declined_by AS jsonb)"
        " @> jsonb_build_array(jsonb_build_object('worker_id', CAST(:worker_id AS text))))"
    )
    # SKIP LOCKED: concurrent claims (other requests, other coordinators) each take rows the
    # others have not locked, instead of queueing behind them. The LIMIT sits under the lock,
    # so no more than :limit rows are ever locked or updated.
    return f"""
UPDATE jobs SET
    state = 'processing',
    attempts = attempts + 1,
    worker_id = :worker_id,
    lease_token = replace(CAST(gen_random_uuid() AS text), '-', ''),
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
    FOR UPDATE OF j SKIP LOCKED
)
RETURNING {_returning()}
"""
