"""Run the coordinator under uvicorn: its logging, and a shutdown that does not wait on long polls."""

from __future__ import annotations

import contextlib
import logging
import socket

import uvicorn

from protocol.logs import configure_logging
from server.app import create_app
from server.coordinator import Coordinator
from server.settings import Settings

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
        await super().shutdown(sockets)


def serve(settings: Settings, host: str, port: int) -> int:
    """Run a coordinator until it is stopped; returns the process's exit status."""
    configure_logging(settings.log_level, settings.log_format)
    # uvicorn's loggers propagate to the root handler configured above (log_config=None keeps
    # uvicorn from installing its own); its access log stays off.
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
    coordinator = Coordinator.from_settings(settings)
    config = uvicorn.Config(
        create_app(settings, coordinator),
        host=host,
        port=port,
        log_config=None,
        log_level=settings.log_level.lower(),
        access_log=False,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
    )
    server = CoordinatorServer(config, coordinator)
    # uvicorn raises the SIGINT it caught again once it has stopped cleanly.
    with contextlib.suppress(KeyboardInterrupt):
        server.run()
    return 0 if server.started else STARTUP_FAILURE
