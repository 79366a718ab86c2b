"""Everything that differs between SQL dialects lives in this folder, the claim above all."""

from __future__ import annotations

from taskpost.server.db.dialects.base import ConnectionOptions, Dialect
from taskpost.server.db.dialects.postgres import PostgresDialect
from taskpost.server.db.dialects.sqlite import SqliteDialect

# The URL schemes users write, and the async driver each one runs on.
_DRIVERS = {
    "sqlite": "sqlite+aiosqlite",
    "sqlite+aiosqlite": "sqlite+aiosqlite",
    "postgresql": "postgresql+asyncpg",
    "postgres": "postgresql+asyncpg",
    "postgresql+asyncpg": "postgresql+asyncpg",
}
ACCEPTED_URLS = (
    "sqlite+aiosqlite:///path/to/file.db (or sqlite:///...)",
    "postgresql://user:password@host:5432/database (or postgres://..., postgresql+asyncpg://...)",
)


def driver_url(url: str) -> str:
    """``url`` with the async driver the coordinator uses: ``postgresql://`` -> ``postgresql+asyncpg://``."""
    scheme, separator, rest = url.partition("://")
    driver = _DRIVERS.get(scheme.lower()) if separator else None
    if driver is None:
        # Only the scheme is quoted: the rest of a URL may hold a password.
        raise ValueError(
            f"unsupported database URL scheme {scheme.split(':')[0][:40]!r}: use "
            + " or ".join(ACCEPTED_URLS)
        )
    return f"{driver}://{rest}"


def dialect_for_url(url: str) -> Dialect:
    """Pick the dialect from a database URL (any form ``driver_url`` accepts)."""
    if driver_url(url).startswith("postgresql"):
        return PostgresDialect()
    return SqliteDialect()


__all__ = ["ACCEPTED_URLS", "ConnectionOptions", "Dialect", "dialect_for_url", "driver_url"]
