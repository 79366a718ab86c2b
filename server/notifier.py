"""Wakes long-polling claims when work may have become available.

``LocalNotifier`` is enough when one process owns the database (SQLite); several coordinator
processes on one PostgreSQL database wake each other with ``PostgresNotifier``
(server/notifier_postgres.py). ``notifier_for`` picks one by the database's dialect.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Protocol

from taskpost.server.db.database import Database
from taskpost.server.settings import Settings


class Notifier(Protocol):
    """A version counter that moves whenever work may have appeared."""

    @property
    def version(self) -> int: ...

    @property
    def closed(self) -> bool:
        """True once ``close`` was called: no claim should wait any more."""

    def notify(self) -> None:
        """Work may be available: wake every waiter (in every process sharing the database).

        Called after the transaction that made the work claimable has committed."""

    async def wait(self, seen_version: int, timeout_s: float) -> None:
        """Return when the version moved past ``seen_version``, or after ``timeout_s`` seconds
        (or sooner: a waiter must then check for work anyway)."""

    async def start(self) -> None:
        """Begin hearing other processes' notifications (nothing to do for a local one)."""

    def close(self) -> None:
        """Wake every waiter for good (the coordinator is stopping)."""

    async def aclose(self) -> None:
        """``close``, then release what ``start`` took."""


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

    async def start(self) -> None:
        return None

    def close(self) -> None:
        self._closed = True
        self.notify()

    async def aclose(self) -> None:
        self.close()


def notifier_for(
    db: Database, settings: Settings, *, job_changes: bool = False, events: bool = False
) -> Notifier:
    """LISTEN/NOTIFY on PostgreSQL, where other coordinator processes may share the database;
    in-process on SQLite, whose file belongs to one coordinator process.

    ``job_changes`` picks the channel for held job reads, ``events`` the one for the event hub
    (new job events, heartbeats' progress included), instead of the one for held claims."""
    if db.dialect.name == "postgresql":
        from taskpost.server.notifier_postgres import (
            EVENTS_CHANNEL,
            JOB_CHANGES_CHANNEL,
            WORK_CHANNEL,
            PostgresNotifier,
        )

        channel = EVENTS_CHANNEL if events else JOB_CHANGES_CHANNEL if job_changes else WORK_CHANNEL
        return PostgresNotifier(
            db.url,
            recheck_s=settings.wakeup_recheck_s,
            connect_timeout_s=settings.db_connect_timeout_s,
            channel=channel,
        )
    return LocalNotifier()
