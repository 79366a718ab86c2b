"""Everything that differs between SQL dialects lives in this folder, the claim above all."""

from __future__ import annotations

from server.db.dialects.base import Dialect
from server.db.dialects.sqlite import SqliteDialect


def dialect_for_url(url: str) -> Dialect:
    """Pick the dialect from a SQLAlchemy URL."""
    scheme = url.split(":", 1)[0]
    if scheme.startswith("sqlite"):
        return SqliteDialect()
    raise ValueError(f"unsupported database URL {url!r}: use sqlite+aiosqlite:///path/to/file.db")


__all__ = ["Dialect", "dialect_for_url"]
