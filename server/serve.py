"""Run the coordinator under uvicorn: its logging, connection limits, TLS, and a shutdown that does
not wait on long polls."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket

import uvicorn

from taskpost.protocol.logs import configure_logging
from taskpost.server.app import create_app
from taskpost.server.connections import (
    ConnectionLimits,
    connection_cap,
    limited_protocol,
    raise_open_file_limit,
)
from taskpost.server.coordinator import Coordinator
from taskpost.server.db.database import Database
from taskpost.server.errors import TaskpostError
from taskpost.server.settings import Settings

logger = logging.getLogger(__name__)

# uvicorn's own exit status when the server could not start (port taken, app failing to start).
STARTUP_FAILURE = 3
GRACEFUL_SHUTDOWN_S = 5


class CoordinatorServer(uvicorn.Server):
    """uvicorn's server, closing the coordinator's notifier as soon as shutdown begins.

    uvicorn waits for open requests before it runs the application's shutdown; an agent's long
    poll would hold it until the graceful timeout and then be cancelled mid-request. Closing the
    notifier first answers every held claim at once with no tasks.
    """

    def __init__(self, config: uvicorn.Config, coordinator: Coordinator) -> None:
        super().__init__(config)
        self.coordinator = coordinator

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self.coordinator.notifier.close()
        self.coordinator.job_changes.close()
        self.coordinator.events.close()
        if self.coordinator.event_hub is not None:
            # Event streams send ``resume`` and end, instead of holding the shutdown.
            await self.coordinator.event_hub.aclose()
        await super().shutdown(sockets)


def serve(settings: Settings, host: str, port: int) -> int:
    """Run a coordinator until it is stopped; returns the process's exit status."""
    server = coordinator_server(settings, host, port)
    if server is None:
        return STARTUP_FAILURE
    # uvicorn raises the SIGINT it caught again once it has stopped cleanly.
    with contextlib.suppress(KeyboardInterrupt):
        server.run()
    return 0 if server.started else STARTUP_FAILURE


def coordinator_server(
    settings: Settings, host: str, port: int, server_class: type[CoordinatorServer] = CoordinatorServer
) -> CoordinatorServer | None:
    """Configure logging and a coordinator's uvicorn server; None (logged) when it cannot start."""
    configure_logging(settings.log_level, settings.log_format)
    # uvicorn's loggers propagate to the root handler configured above (log_config=None keeps
    # uvicorn from installing its own); its access log stays off.
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
    if settings.ssl_keyfile is not None and settings.ssl_certfile is None:
        logger.error("TASKPOST_SSL_KEYFILE needs TASKPOST_SSL_CERTFILE, the certificate it belongs to")
        return None
    if not settings.auto_migrate and not _schema_is_current(settings):
        return None
    coordinator = Coordinator.from_settings(settings)
    config = uvicorn.Config(
        create_app(settings, coordinator),
        host=host,
        port=port,
        log_config=None,
        log_level=settings.log_level.lower(),
        access_log=False,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
        http=limited_protocol(_connection_limits(settings)),
        timeout_keep_alive=settings.keep_alive_s,
        proxy_headers=bool(settings.forwarded_allow_ips),
        forwarded_allow_ips=settings.forwarded_allow_ips or None,
        ssl_certfile=settings.ssl_certfile,
        ssl_keyfile=settings.ssl_keyfile,
    )
    return server_class(config, coordinator)


def _schema_is_current(settings: Settings) -> bool:
    """With TASKPOST_AUTO_MIGRATE=false: whether the database is at head. When it is not, one
    error line says what to run, rather than the traceback of a failed application start-up."""

    async def check() -> None:
        database = Database.from_settings(settings)
        try:
            await database.create_schema(auto_migrate=False)
        finally:
            await database.close()

    try:
        asyncio.run(check())
    except TaskpostError as exc:
        logger.error("%s", exc, extra={"action": "schema_check"})
        return False
    return True


def _connection_limits(settings: Settings) -> ConnectionLimits:
    open_files = raise_open_file_limit()
    cap = connection_cap(settings.max_connections, open_files)
    if cap < settings.max_connections:
        logger.warning(
            "serving at most %d connections, not %d (TASKPOST_MAX_CONNECTIONS): the open-file limit is %d",
            cap,
            settings.max_connections,
            open_files,
            extra={"action": "connection_cap", "max_connections": cap, "open_files": open_files},
        )
    return ConnectionLimits(max_connections=cap, header_timeout_s=settings.header_timeout_s)
