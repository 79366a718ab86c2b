"""``taskpost server --with-agent``: a coordinator and one agent in one process, for hosts that
allow a single service.

Both run on one event loop rather than as a supervisor and a child process: one signal handler
(the agent's ``Shutdown``) then owns SIGTERM, so the drain order is plain code (the agent stops
claiming, finishes its tasks, reports them and deregisters; only then does uvicorn stop serving),
and there is no child to lose or orphan. Handlers already run in threads of their own (see
``agent.task_runner``), so a long task does not stop the coordinator from answering.

Unless the agent is given a key (``--api-key``/``--api-key-file``), it gets a worker key minted
in the coordinator's own database at start and revoked when it stops: nothing to copy around.
``GET /health`` is the coordinator's answer with the agent's report added under ``agent``; it is
503 when either part is unwell (and while the agent drains).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable, Iterator, Sequence
from typing import Any, cast

import click
import typer
from pydantic import SecretStr
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from taskpost.agent.cli import agent_command, settings_from_flags
from taskpost.agent.client import CoordinatorClient
from taskpost.agent.errors import ConfigError
from taskpost.agent.handlers import discover_handlers
from taskpost.agent.health import health_report
from taskpost.agent.runner import EXIT_FATAL, Agent, setup_handlers
from taskpost.agent.settings import AgentSettings
from taskpost.agent.shutdown import Shutdown
from taskpost.agent.workdir import prepare_work_dir
from taskpost.protocol import Role
from taskpost.server.serve import STARTUP_FAILURE, CoordinatorServer, coordinator_server
from taskpost.server.services import keys
from taskpost.server.settings import Settings

logger = logging.getLogger(__name__)

MINTED_KEY_NAME = "single-service agent"
Report = Callable[[], tuple[int, dict[str, Any]]]


def agent_settings(args: Sequence[str], local_url: str) -> tuple[AgentSettings, bool]:
    """The in-process agent's settings from ``taskpost agent`` flags; True when it needs a minted
    key. It talks to ``local_url`` unless told otherwise, and has no ``/health`` of its own."""
    command = typer.main.get_command(_agent_app())
    try:
        flags = dict(command.make_context("taskpost server --with-agent", list(args)).params)
    except click.ClickException as exc:
        exc.show()
        raise typer.Exit(EXIT_FATAL) from None
    mint = flags.get("api_key") is None and flags.get("api_key_file") is None
    if mint:
        flags["api_key"] = "minted-at-start"  # replaced once the coordinator has started
    flags["server_url"] = flags.get("server_url") or local_url
    flags["health_port"] = 0
    return settings_from_flags(flags), mint


def _agent_app() -> typer.Typer:
    app = typer.Typer(add_completion=False)
    app.command()(agent_command)
    return app


class _SharedSignalServer(CoordinatorServer):
    """The coordinator's server without signal handlers of its own: the agent's ``Shutdown`` has them."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class AgentHealth:
    """The agent's part of ``GET /health``, an ASGI wrapper around the coordinator's app."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.report: Report | None = None

    def _agent(self) -> tuple[int, dict[str, Any]]:
        return self.report() if self.report is not None else (503, {"status": "starting"})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != "/health" or scope["method"] not in ("GET", "HEAD"):
            await self.app(scope, receive, send)
            return
        start: Message = {}
        chunks: list[bytes] = []

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await self.app(scope, receive, capture)
        agent_status, agent_body = self._agent()
        status = start["status"] if agent_status == 200 else 503
        try:
            body = json.loads(b"".join(chunks))
            body["agent"] = agent_body
            payload = json.dumps(body).encode()
        except ValueError:  # HEAD: no body to add to
            payload = b""
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
        headers.append((b"content-length", str(len(payload)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": payload})


async def run_single_service(
    settings: Settings, host: str, port: int, agent: AgentSettings, mint_key: bool
) -> int:
    """Serve the coordinator and run the agent until SIGTERM/SIGINT; returns the exit status."""
    server = coordinator_server(settings, host, port, _SharedSignalServer)
    if server is None:
        return STARTUP_FAILURE
    health = AgentHealth(cast(ASGIApp, server.config.app))  # create_app's FastAPI
    server.config.app = health
    shutdown = Shutdown()
    shutdown.install_signal_handlers()
    serving = asyncio.ensure_future(server.serve())
    # The coordinator stopping by itself stops the agent too, at once.
    serving.add_done_callback(lambda _: shutdown.force())
    try:
        while not server.started:
            if serving.done():
                return STARTUP_FAILURE
            if await shutdown.wait_requested(0.05):
                return STARTUP_FAILURE if serving.done() else 0
        key_id = None
        if mint_key:
            created = await keys.create(server.coordinator, Role.WORKER, MINTED_KEY_NAME)
            key_id = created.info.id
            agent = agent.model_copy(update={"api_key": SecretStr(created.key)})
        try:
            return await _run_agent(agent, shutdown, health)
        finally:
            if key_id is not None:
                await keys.revoke(server.coordinator, key_id)
    finally:
        logger.info("agent stopped: stopping the coordinator", extra={"action": "stopping"})
        server.should_exit = True
        # A second signal stops the coordinator at once too, without waiting on open requests.
        forcing = asyncio.ensure_future(_force_exit(shutdown, server))
        await asyncio.gather(serving, return_exceptions=True)
        forcing.cancel()
        shutdown.remove_signal_handlers()


async def _force_exit(shutdown: Shutdown, server: CoordinatorServer) -> None:
    await shutdown.forced.wait()
    server.force_exit = True


async def _run_agent(settings: AgentSettings, shutdown: Shutdown, health: AgentHealth) -> int:
    try:
        work_root = prepare_work_dir(settings.work_dir)
        ready = await setup_handlers(discover_handlers(settings.task_types), settings)
        if not ready:
            raise ConfigError("no task handler could be loaded: nothing to advertise")
    except ConfigError as exc:
        logger.critical("agent cannot start: %s", exc, extra={"action": "fatal"})
        return EXIT_FATAL
    async with CoordinatorClient(settings.server_url, settings.api_key.get_secret_value()) as client:
        agent = Agent(settings, ready, client, shutdown, work_root)
        task_types = sorted(ready)
        health.report = lambda: health_report(settings, agent.state, task_types)
        return await agent.run()
