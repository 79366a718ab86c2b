"""Wake-ups across coordinator processes sharing one PostgreSQL database: LISTEN/NOTIFY.

Each process keeps one connection of its own (not from the pool) per channel that LISTENs on it
and also sends the NOTIFYs: ``WORK_CHANNEL`` wakes held claims, ``JOB_CHANGES_CHANNEL`` wakes
held job reads (``GET /jobs/{id}?wait_s=``), so that a completion does not wake every claim;
``EVENTS_CHANNEL`` wakes the event hub (new ``job_events`` rows, progress included).
``notify`` wakes this process's waiters at once and asks for one
NOTIFY (several asks while one is being sent make one more, not one each); a notification from
another process wakes this process's waiters.

A notification can be lost: while the connection is down (it reconnects with backoff, and wakes
every waiter once it listens again), and always through a transaction-mode pooler, which does
not carry LISTEN. So no waiter waits longer than ``recheck_s`` before it checks for work again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from typing import Any

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy.engine import make_url

from taskpost.server.notifier import LocalNotifier

logger = logging.getLogger(__name__)

WORK_CHANNEL = "taskpost_work"
JOB_CHANGES_CHANNEL = "taskpost_job_changes"
EVENTS_CHANNEL = "taskpost_events"
APPLICATION_NAME = "taskpost-listener"
_FIRST_BACKOFF_S = 0.1
_MAX_BACKOFF_S = 10.0
_PING_EVERY_S = 10.0
"""An idle connection is checked this often: a peer that vanished without closing the socket
(a network partition) is only found out by sending something."""


class ListenerLost(Exception):
    """The listening connection closed."""


class PostgresNotifier:
    """A ``Notifier`` for every coordinator process on one PostgreSQL database."""

    def __init__(
        self, url: str, *, recheck_s: float, connect_timeout_s: float = 5.0, channel: str = WORK_CHANNEL
    ) -> None:
        # asyncpg takes the URL users write, without SQLAlchemy's driver suffix.
        self._dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        self.recheck_s = recheck_s
        self.channel = channel
        self._connect_timeout_s = connect_timeout_s
        self._waiters = LocalNotifier()
        self._origin = uuid.uuid4().hex
        """Sent as each NOTIFY's payload, so that this process skips its own notifications."""
        self._send_wanted = False
        self._attention = asyncio.Event()
        """Set when there is a NOTIFY to send or the connection closed."""
        self._connection: Any = None
        self._first_attempt = asyncio.Event()
        self._backoff_s = _FIRST_BACKOFF_S
        self._task: asyncio.Task[None] | None = None

    @property
    def version(self) -> int:
        return self._waiters.version

    @property
    def closed(self) -> bool:
        return self._waiters.closed

    @property
    def listening(self) -> bool:
        """Whether notifications from other processes reach this one now."""
        return self._connection is not None and not self._connection.is_closed()

    @property
    def backend_pid(self) -> int | None:
        """The server process of the listening connection (for operators and tests)."""
        return self._connection.get_server_pid() if self.listening else None

    def notify(self) -> None:
        self._waiters.notify()
        if not self.closed:
            self._send_wanted = True
            self._attention.set()

    async def wait(self, seen_version: int, timeout_s: float) -> None:
        await self._waiters.wait(seen_version, min(timeout_s, self.recheck_s))

    async def start(self) -> None:
        """Start listening; returns once the first connection attempt succeeded or failed (it
        keeps trying in the background)."""
        if self._task is None:
            self._task = asyncio.create_task(self._listen_forever(), name=f"taskpost-listener-{self.channel}")
        await self._first_attempt.wait()

    def close(self) -> None:
        self._waiters.close()
        self._attention.set()  # the listening task sees it and ends

    async def aclose(self) -> None:
        self.close()
        task, self._task = self._task, None
        if task is None:
            return
        # The task ends by itself once it sees ``closed``; cancelling it is the fallback for a
        # connection attempt that hangs (cancelling alone may be lost in asyncio.wait_for).
        try:
            await asyncio.wait_for(asyncio.shield(task), self._connect_timeout_s + 1)
        except TimeoutError:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _listen_forever(self) -> None:
        while not self.closed:
            try:
                await self._listen_once()
            except Exception as exc:
                # Whatever broke (the network, the server going away mid-statement, asyncpg's
                # own state), the answer is a new connection: this task must outlive them all.
                logger.warning(
                    "wake-up connection to PostgreSQL lost or refused (%s): retrying in %.1f s;"
                    " until then waiting claims re-check every %.1f s",
                    type(exc).__name__,
                    self._backoff_s,
                    self.recheck_s,
                    extra={"action": "listener_reconnect"},
                )
            finally:
                self._first_attempt.set()
            await self._pause(self._backoff_s)
            self._backoff_s = min(self._backoff_s * 2, _MAX_BACKOFF_S)

    async def _pause(self, seconds: float) -> None:
        """Sleep, but no longer than until ``close``."""
        deadline = asyncio.get_running_loop().time() + seconds
        while not self.closed and (left := deadline - asyncio.get_running_loop().time()) > 0:
            self._attention.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._attention.wait(), left)

    async def _listen_once(self) -> None:
        connection = await asyncpg.connect(
            self._dsn,
            timeout=self._connect_timeout_s,
            server_settings={"application_name": APPLICATION_NAME},
        )
        try:
            connection.add_termination_listener(self._on_terminated)
            await connection.add_listener(self.channel, self._on_notification)
            self._connection = connection
            self._first_attempt.set()
            self._backoff_s = _FIRST_BACKOFF_S
            self._attention.set()  # a NOTIFY asked for while the connection was down goes now
            # Whatever was sent while this process was not listening is lost: everyone re-checks.
            self._waiters.notify()
            await self._serve(connection)
        finally:
            self._connection = None
            with contextlib.suppress(Exception):
                await asyncio.wait_for(connection.close(), self._connect_timeout_s)
            if not connection.is_closed():
                connection.terminate()

    async def _serve(self, connection: Any) -> None:
        """Send the NOTIFYs asked for, and check an idle connection now and then, until ``close``."""
        while not self.closed:
            try:
                await asyncio.wait_for(self._attention.wait(), _PING_EVERY_S)
            except TimeoutError:
                await connection.execute("SELECT 1", timeout=self._connect_timeout_s)
                continue
            self._attention.clear()
            if connection.is_closed():
                raise ListenerLost()
            if self._send_wanted:  # even when closing: the last submits reach the other replicas
                self._send_wanted = False
                try:
                    await connection.execute(
                        "SELECT pg_notify($1, $2)",
                        self.channel,
                        self._origin,
                        timeout=self._connect_timeout_s,
                    )
                except BaseException:
                    self._send_wanted = True  # sent once listening again
                    raise

    def _on_notification(self, _connection: Any, _pid: int, _channel: str, payload: str) -> None:
        if payload != self._origin:
            self._waiters.notify()

    def _on_terminated(self, _connection: Any) -> None:
        self._attention.set()
