"""``taskpost db``: the migrations of the coordinator's database, run from the command line."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from taskpost.server.db.database import Database
from taskpost.server.db.migrate import SchemaState, UpgradeReport
from taskpost.server.settings import Settings

T = TypeVar("T")


def upgrade(settings: Settings) -> UpgradeReport:
    """Upgrade the database of ``settings`` to head (what the coordinator does on start)."""
    return _on_database(settings, Database.upgrade_schema)


def current(settings: Settings) -> SchemaState:
    """Where the database of ``settings`` stands; changes nothing."""
    return _on_database(settings, Database.schema_state)


def _on_database(settings: Settings, action: Callable[[Database], Awaitable[T]]) -> T:
    async def main() -> T:
        database = Database.from_settings(settings)
        try:
            return await action(database)
        finally:
            await database.close()

    return asyncio.run(main())
