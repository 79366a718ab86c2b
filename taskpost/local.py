"""Direct access to a coordinator's database for the CLI on the same machine (like ``rq``'s)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from taskpost.server.coordinator import Coordinator
from taskpost.server.settings import Settings

T = TypeVar("T")


def run_with_coordinator(settings: Settings, action: Callable[[Coordinator], Awaitable[T]]) -> T:
    async def main() -> T:
        coord = Coordinator.from_settings(settings)
        try:
            await coord.db.create_schema(auto_migrate=settings.auto_migrate)
            return await action(coord)
        finally:
            await coord.db.close()

    return asyncio.run(main())
