"""Which database failures mean "unavailable": the API answers them 503 ``database_unavailable``.

Two kinds, told apart by when they happen:

- getting a connection fails (refused, timed out, the server starting up or shutting down, too
  many connections, no pooled connection free within the pool timeout): any error of the driver,
  the network or the pool before the transaction's block runs;
- a connection is lost during the block (SQLAlchemy flags it ``connection_invalidated`` and
  throws the rest of the pool's connections away).

Anything else in the block (a constraint, a statement timeout, a bug, a blob store's OSError)
is left as it is. Nothing is retried here: the request fails fast, the agent or client retries,
and the next transaction connects afresh, which is how a process recovers by itself.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncConnection

from taskpost.server.db.dialects.base import ConnectionOptions
from taskpost.server.errors import DatabaseUnavailable

logger = logging.getLogger(__name__)


@asynccontextmanager
async def unavailable_on_connection_errors(
    transaction: AbstractAsyncContextManager[AsyncConnection], options: ConnectionOptions
) -> AsyncIterator[AsyncConnection]:
    """``transaction``, raising ``DatabaseUnavailable`` for the failures described above."""
    connected = False
    try:
        async with transaction as conn:
            connected = True
            yield conn
    except Exception as exc:
        reason = _connect_failure(exc, options) if not connected else _lost_connection(exc)
        if reason is None:
            raise
        logger.warning("database unavailable: %s", reason, extra={"action": "database_unavailable"})
        raise DatabaseUnavailable() from exc


def _connect_failure(exc: Exception, options: ConnectionOptions) -> str | None:
    if isinstance(exc, sa_exc.TimeoutError):
        return f"no connection free within {options.pool_timeout_s:g} s (TASKPOST_DB_POOL_TIMEOUT_S)"
    driver_error = type(exc).__module__.split(".")[0] in ("asyncpg", "sqlite3", "aiosqlite")
    if isinstance(exc, OSError | sa_exc.DBAPIError) or driver_error:
        return _describe(exc)
    return None


def _lost_connection(exc: Exception) -> str | None:
    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        return f"the connection was lost: {_describe(exc)}"
    return None


def _describe(exc: BaseException) -> str:
    # The driver's own error, without SQLAlchemy's wrapping and the statement it carries.
    original = exc.orig if isinstance(exc, sa_exc.DBAPIError) and exc.orig is not None else exc
    text = str(original).strip().splitlines()[0] if str(original).strip() else ""
    return f"{type(original).__name__}: {text}" if text else type(original).__name__
