"""Wakes long-polling claims when work may have become available."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Protocol


class Notifier(Protocol):
    """A version counter that moves whenever work may have appeared."""

    @property
    def version(self) -> int: ...

    @property
    def closed(self) -> bool:
        """True once ``close`` was called: no claim should wait any more."""

    def notify(self) -> None:
        """Work may be available: wake every waiter."""

    async def wait(self, seen_version: int, timeout_s: float) -> None:
        """Return when the version moved past ``seen_version``, or after ``timeout_s`` seconds."""

    def close(self) -> None:
        """Wake every waiter for good (the coordinator is stopping)."""


class LocalNotifier:
    """In-process notifier: enough when one coordinator process owns the database."""

    def __init__(self) -> None:
        self._version = 0
        self._event = asyncio.Event()
        self._closed = False

    @property
    def version(self) -> int:
        return self._version

    @property
    def closed(self) -> bool:
        return self._closed

    def notify(self) -> None:
        self._version += 1
        event, self._event = self._event, asyncio.Event()
        event.set()

    async def wait(self, seen_version: int, timeout_s: float) -> None:
        if self._closed or self._version != seen_version or timeout_s <= 0:
            return
        event = self._event
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), timeout_s)

    def close(self) -> None:
        self._closed = True
        self.notify()
