"""Limits on the coordinator's client connections, kept in uvicorn's HTTP/1.1 protocol (h11).

uvicorn closes a keep-alive connection that stays idle between requests, but nothing closes a
connection that is opened and then sends nothing, or half a request's headers: each would hold a
file descriptor for ever. ``LimitedH11Protocol`` adds:

- a header timeout: from a connection's opening, and from the first byte of each later request,
  the complete headers must arrive within ``header_timeout_s`` or the connection is closed;
- a cap on connections: while ``max_connections`` are open, a new one is answered
  ``503 overloaded`` (the one JSON error shape, with ``Retry-After``) as soon as its headers
  arrive, and closed; past twice the cap a new one is closed at once, unanswered, so that a
  flood of connections cannot exhaust the process's file descriptors either.

Connections already open keep being served: an agent's long poll is never the one refused.
"""

from __future__ import annotations

import asyncio
import logging
import resource
from dataclasses import dataclass
from typing import Any, ClassVar, cast

import h11
from starlette.types import Receive, Scope, Send
from uvicorn._types import ASGI3Application
from uvicorn.config import Config
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.server import ServerState

from taskpost.server.api.errors import error_response

logger = logging.getLogger(__name__)

OVERLOADED = "overloaded"
RETRY_AFTER_S = 2
RESERVED_FDS = 64
"""Descriptors kept for everything but client connections: the database, logs, the listener."""


@dataclass(frozen=True)
class ConnectionLimits:
    max_connections: int
    header_timeout_s: float

    @property
    def drop_above(self) -> int:
        """Past this many open connections a new one is closed without an answer."""
        return 2 * self.max_connections


def raise_open_file_limit() -> int:
    """Raise this process's soft RLIMIT_NOFILE to its hard limit; returns the soft limit now."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            logger.warning("could not raise the open-file limit from %d to %d", soft, hard)
    return soft


def connection_cap(wanted: int, open_files: int) -> int:
    """``wanted``, lowered so that a full house cannot run the process out of descriptors.

    A served connection may hold two descriptors (its socket and a file being streamed), a
    refused one its socket until it is answered; the process keeps ``RESERVED_FDS`` besides.
    """
    return max(1, min(wanted, (open_files - RESERVED_FDS) // 3))


def _overloaded_app(max_connections: int) -> ASGI3Application:
    async def overloaded(scope: Scope, receive: Receive, send: Send) -> None:
        response = error_response(
            503,
            OVERLOADED,
            f"the coordinator is serving its limit of {max_connections} connections "
            "(TASKPOST_MAX_CONNECTIONS); retry later",
            {"max_connections": max_connections},
            headers={"Retry-After": str(RETRY_AFTER_S), "Connection": "close"},
        )
        await response(scope, receive, send)

    return cast(ASGI3Application, overloaded)


class LimitedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a header timeout and a connection cap (``limits``)."""

    limits: ClassVar[ConnectionLimits]

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        open_now = len(self.connections)
        if open_now > self.limits.drop_above:
            logger.warning(
                "over twice the connection limit: closing new connections unanswered",
                extra={"action": "connection_dropped", "max_connections": self.limits.max_connections},
            )
            transport.abort()
            return
        if open_now > self.limits.max_connections:
            logger.warning(
                "at the connection limit: answering new connections 503 overloaded",
                extra={"action": "overloaded", "max_connections": self.limits.max_connections},
            )
            self.app = _overloaded_app(self.limits.max_connections)
        self._arm_header_timer()

    def data_received(self, data: bytes) -> None:
        if self._header_timer is None and self._awaiting_headers():
            self._arm_header_timer()  # the first byte of a request after a keep-alive pause
        super().data_received(data)
        if not self._awaiting_headers():
            self._cancel_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_timer()
        super().connection_lost(exc)

    def _awaiting_headers(self) -> bool:
        return self.conn.their_state is h11.IDLE

    def _arm_header_timer(self) -> None:
        self._cancel_header_timer()
        self._header_timer = self.loop.call_later(self.limits.header_timeout_s, self._on_header_timeout)

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _on_header_timeout(self) -> None:
        self._header_timer = None
        if self._awaiting_headers() and not self.transport.is_closing():
            logger.debug(
                "closed a connection that sent no complete request headers within %s s",
                self.limits.header_timeout_s,
                extra={"action": "header_timeout"},
            )
            self.transport.close()


def limited_protocol(limits: ConnectionLimits) -> type[LimitedH11Protocol]:
    """A ``LimitedH11Protocol`` class bound to ``limits``, for ``uvicorn.Config(http=...)``."""

    class BoundProtocol(LimitedH11Protocol):
        pass

    BoundProtocol.limits = limits
    return BoundProtocol
