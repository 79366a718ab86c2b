"""``GET /health`` on ``health_host:health_port``: a tiny HTTP/1.1 server on asyncio streams.

Answers 200 with ``status: ok`` while the agent is in touch with its coordinator, and 503
(``stopping`` or ``unhealthy``) otherwise. "In touch" means the coordinator answered a request
(register, claim, heartbeat, complete) within ``stale_after_s``:
``3 * max(heartbeat_interval_s, long_poll_s) + 60`` seconds (60 s is the back-off cap), counted
from the agent's start until the first answer. ``coordinator_reachable`` is stricter: it says
whether the latest request got an answer, so it turns false at the first failed claim,
heartbeat or completion, long before the status does.

Not uvicorn: its ``Server.serve()`` installs its own SIGINT/SIGTERM handlers, and the agent's
two-stage shutdown must own those signals. One GET route does not need a framework.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import logging
import os
import time
from typing import Any

from taskpost.agent.errors import ConfigError
from taskpost.agent.settings import AgentSettings
from taskpost.agent.state import AgentState

logger = logging.getLogger(__name__)

BACKOFF_CAP_S = 60.0
MAX_HEADER_BYTES = 16 * 1024
READ_TIMEOUT_S = 5.0


def stale_after_s(state: AgentState) -> float:
    cadence = state.cadence
    return 3 * max(cadence.heartbeat_interval_s, cadence.long_poll_s) + BACKOFF_CAP_S


def health_report(
    settings: AgentSettings, state: AgentState, task_types: list[str]
) -> tuple[int, dict[str, Any]]:
    """The HTTP status and JSON body of ``GET /health``."""
    now = time.monotonic()
    since_contact = now - (state.last_contact if state.last_contact is not None else state.started_at)
    reachable = state.reachable and since_contact <= stale_after_s(state)
    if state.stopping:
        status = "stopping"
    elif since_contact > stale_after_s(state):
        status = "unhealthy"
    else:
        status = "ok"
    last_poll = state.last_poll_at
    body: dict[str, Any] = {
        "status": status,
        "worker_id": state.worker_id,
        "worker_type": settings.worker_type.value,
        "task_types": task_types,
        "running_tasks": sorted(state.running),
        "max_concurrent": settings.max_concurrent,
        "draining": state.draining,
        "last_successful_poll": last_poll.isoformat() if last_poll else None,
        "seconds_since_poll": (round((time.time() - last_poll.timestamp()), 3) if last_poll else None),
        "last_contact": state.last_contact_at.isoformat() if state.last_contact_at else None,
        "seconds_since_contact": round(since_contact, 3),
        "coordinator_reachable": reachable,
    }
    return (200 if status == "ok" else 503), body


class HealthServer:
    """Serves ``GET /health``; ``port=0`` binds an ephemeral port (see ``port`` after ``start``)."""

    def __init__(
        self,
        settings: AgentSettings,
        state: AgentState,
        task_types: list[str],
        *,
        host: str | None = None,
        port: int | None = None,
    ) -> None:
        self.settings = settings
        self.state = state
        self.task_types = task_types
        self.host = settings.health_host if host is None else host
        self.port = settings.health_port if port is None else port
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        """Listen; a port that is taken (another agent on this host) is a ``ConfigError``."""
        try:
            self._server = await asyncio.start_server(self._handle, self.host, self.port)
        except OSError as exc:
            reason = os.strerror(exc.errno) if exc.errno else str(exc)
            if exc.errno == errno.EADDRINUSE:
                reason += " (another agent on this host?)"
            raise ConfigError(
                f"/health cannot listen on {self.host}:{self.port}: {reason}; set another port with "
                "TASKPOST_HEALTH_PORT / --health-port, or 0 to disable /health"
            ) from exc
        sockets = self._server.sockets
        if sockets:
            self.port = sockets[0].getsockname()[1]
        logger.info(
            "health endpoint on http://%s:%d/health", self.host, self.port, extra={"action": "health"}
        )

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), READ_TIMEOUT_S)
            method, _, rest = head.decode("latin-1").partition(" ")
            path = rest.split(" ", 1)[0].split("?", 1)[0]
            status, body = self._route(method, path)
            payload = json.dumps(body).encode()
            reason = {200: "OK", 404: "Not Found", 405: "Method Not Allowed", 503: "Service Unavailable"}[
                status
            ]
            writer.write(
                f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n".encode()
                + (payload if method != "HEAD" else b"")
            )
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    def _route(self, method: str, path: str) -> tuple[int, dict[str, Any]]:
        if path.rstrip("/") != "/health":
            return 404, {"error": "not found; try GET /health"}
        if method not in ("GET", "HEAD"):
            return 405, {"error": "method not allowed"}
        return health_report(self.settings, self.state, self.task_types)
