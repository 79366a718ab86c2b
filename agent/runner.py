"""The agent's run loop: register, claim, run, heartbeat, and shut down cleanly.

``run_agent(settings)`` is the whole agent; it returns the process exit code:
0 after a graceful shutdown, 1 when running tasks had to be abandoned (released) or the agent
crashed, 2 when it cannot run at all (refused API key, bad configuration).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import platform
import time
from collections.abc import Coroutine, Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from taskpost.agent import __version__
from taskpost.agent.backoff import Backoff
from taskpost.agent.client import CoordinatorClient
from taskpost.agent.errors import (
    AuthError,
    ConfigError,
    CoordinatorError,
    CoordinatorUnavailable,
    WorkerUnknown,
)
from taskpost.agent.handlers import CancelReason, Handler, HandlerError, discover_handlers
from taskpost.agent.handlers.base import handler_schema
from taskpost.agent.health import HealthServer
from taskpost.agent.heartbeat import Heartbeat
from taskpost.agent.key_file import shared_key_file_warning
from taskpost.agent.logging import set_worker_id
from taskpost.agent.net.addresses import AddressPolicy
from taskpost.agent.outbox import Outbox
from taskpost.agent.sendable import describe_problems
from taskpost.agent.settings import AgentSettings
from taskpost.agent.shutdown import Shutdown
from taskpost.agent.state import AgentState, RunningTask
from taskpost.agent.task_runner import TaskRunner
from taskpost.agent.workdir import prepare_work_dir
from taskpost.protocol import ClaimedTask, CompletionAck, TaskCompletion, WorkerRegister

logger = logging.getLogger(__name__)

BACKOFF_CAP_S = 60.0
EXIT_OK, EXIT_ABANDONED, EXIT_FATAL = 0, 1, 2


class Agent:
    """One agent process: owns the state, the loops and the running task coroutines."""

    def __init__(
        self,
        settings: AgentSettings,
        handlers: Mapping[str, Handler],
        client: CoordinatorClient,
        shutdown: Shutdown | None = None,
        work_root: Path | None = None,
    ) -> None:
        self.settings = settings
        self.handlers = dict(handlers)
        self.client = client
        self.state = AgentState()
        # Every request of the client, whoever makes it, tells /health whether it got an answer.
        client.on_exchange = self.state.exchanged
        self.outbox = Outbox(self._send_completions, Backoff(settings.poll_interval, BACKOFF_CAP_S))
        root = work_root or prepare_work_dir(settings.work_dir)
        self.runner = TaskRunner(client, self.state, self.outbox, self.handlers, root)
        self.heartbeat = Heartbeat(client, self.state, self._reregister, self._apply_drain)
        self.shutdown = shutdown or Shutdown()
        self.exit_code = EXIT_OK
        self._task_coros: set[asyncio.Task[None]] = set()
        self._register_lock = asyncio.Lock()
        self._files_roots = tuple(Path(root) for root in settings.files_roots)
        self._url_policy = AddressPolicy.from_settings(settings)

    # -- lifecycle --------------------------------------------------------------------------
    async def run(self) -> int:
        """Register, serve until a shutdown is asked for, then stop; returns the exit code."""
        try:
            if not await self._register(initial=True):
                return EXIT_OK
        except (AuthError, ConfigError) as exc:
            logger.critical("cannot start: %s", exc, extra={"action": "fatal"})
            return EXIT_FATAL
        logger.info("Waiting for tasks", extra={"action": "waiting"})
        loops = [
            self._guard(self._claim_loop(), "claim"),
            self._guard(self.heartbeat.run(), "heartbeat"),
            self._guard(self.outbox.run_flusher(), "completions"),
        ]
        claim_loop, heartbeat_loop, flusher = (asyncio.ensure_future(loop) for loop in loops)
        try:
            await self.shutdown.requested.wait()
            self.state.stopping = True
            await _cancel(claim_loop)
            self.outbox.stop_claiming()
            await self._finish_running()
            await _cancel(flusher)
            await _cancel(heartbeat_loop)
            if not await self.outbox.flush(timeout_s=10.0):
                logger.error("%d completion(s) could not be reported before exit", len(self.outbox))
            await self._deregister()
        finally:
            for loop in (claim_loop, heartbeat_loop, flusher):
                loop.cancel()
        logger.info("agent stopped (exit code %d)", self.exit_code, extra={"action": "stopped"})
        return self.exit_code

    async def _guard(self, loop: Coroutine[Any, Any, None], name: str) -> None:
        """Turn a loop's fatal error into a shutdown with the right exit code."""
        try:
            await loop
        except AuthError as exc:
            logger.critical("API key refused: %s", exc, extra={"action": "fatal"})
            self._fail(EXIT_FATAL)
        except Exception:
            logger.exception("the %s loop crashed; stopping the agent", name, extra={"action": "fatal"})
            self._fail(EXIT_ABANDONED)

    def _fail(self, code: int) -> None:
        self.exit_code = max(self.exit_code, code)
        self.shutdown.force()

    async def _finish_running(self) -> None:
        """Let running tasks finish within the grace period, then release what is left."""
        grace = self.settings.shutdown_grace_s
        if self._task_coros and not self.shutdown.forced.is_set():
            logger.info(
                "shutting down: waiting up to %.0fs for %d running task(s); signal again to stop now",
                grace,
                len(self._task_coros),
                extra={"action": "draining"},
            )
            await self.shutdown.wait_tasks(self._task_coros, grace)
        if not self.state.running:
            return
        abandoned = list(self.state.running.values())
        for task in abandoned:
            task.cancel(CancelReason.SHUTDOWN)
        self.exit_code = max(self.exit_code, EXIT_ABANDONED)
        logger.warning(
            "stopping now: releasing %d running task(s)", len(abandoned), extra={"action": "release"}
        )
        await self._release(abandoned)
        if self._task_coros:
            await asyncio.wait(self._task_coros, timeout=5.0)

    async def _release(self, tasks: Sequence[RunningTask]) -> None:
        if self.state.worker_id is None or not tasks:
            return
        try:
            await asyncio.wait_for(
                self.client.release(
                    self.state.worker_id, [task.progress() for task in tasks], reason="agent shutting down"
                ),
                timeout=10.0,
            )
        except (TimeoutError, AuthError, WorkerUnknown, CoordinatorUnavailable, CoordinatorError) as exc:
            logger.warning("could not release leases (they will expire): %s", exc)

    async def _deregister(self) -> None:
        if self.state.worker_id is None:
            return
        try:
            await asyncio.wait_for(self.client.deregister(self.state.worker_id), timeout=5.0)
        except (TimeoutError, AuthError, WorkerUnknown, CoordinatorUnavailable, CoordinatorError) as exc:
            logger.warning("could not deregister: %s", exc)

    # -- registration -----------------------------------------------------------------------
    def _registration(self) -> WorkerRegister:
        s = self.settings
        try:
            return WorkerRegister(
                name=s.name,
                worker_type=s.worker_type,
                task_types=sorted(self.handlers),
                labels=s.advertised_labels,
                param_schemas={
                    task_type: schema
                    for task_type, handler in self.handlers.items()
                    if (schema := handler_schema(handler, __version__)) is not None
                },
                max_concurrent=s.max_concurrent,
                version=__version__,
                host=platform.node() or None,
            )
        except ValidationError as exc:  # a name or label the coordinator would refuse
            raise ConfigError(
                f"this agent's registration would be refused ({describe_problems(exc)}); "
                "check TASKPOST_NAME, TASKPOST_LABELS and TASKPOST_FILES_ROOTS"
            ) from None

    async def _register(self, *, initial: bool = False) -> bool:
        """Register, retrying while the coordinator is unreachable; False if a shutdown came first."""
        backoff = Backoff(self.settings.poll_interval, BACKOFF_CAP_S)
        while True:
            try:
                registered = await self.client.register(self._registration())
                break
            except CoordinatorUnavailable as exc:
                delay = backoff.next_delay(at_least=exc.retry_after_s)
                logger.warning(
                    "coordinator unreachable (%s); retrying in %.1fs",
                    exc,
                    delay,
                    extra={"action": "register_retry"},
                )
            except CoordinatorError as exc:
                if initial:
                    raise ConfigError(f"registration refused: {exc} (check TASKPOST_SERVER_URL)") from exc
                delay = backoff.next_delay()
                logger.error("registration refused (%s); retrying in %.1fs", exc, delay)
            if await self.shutdown.wait_requested(delay):
                return False
        self.state.worker_id = registered.worker_id
        self.state.cadence = registered.cadence
        self.state.touch()
        set_worker_id(registered.worker_id)
        c = registered.cadence
        logger.info(
            "registered as %s (heartbeat %.0fs, long poll %.0fs, lease %.0fs)",
            registered.worker_id,
            c.heartbeat_interval_s,
            c.long_poll_s,
            c.lease_s,
            extra={"action": "registered"},
        )
        return True

    async def _reregister(self, stale_worker_id: str) -> None:
        """Register again after a 404 worker_not_found; concurrent callers register once."""
        async with self._register_lock:
            if self.state.worker_id == stale_worker_id:
                await self._register()

    # -- claiming ---------------------------------------------------------------------------
    def _apply_drain(self, drain: bool) -> None:
        if drain == self.state.draining:
            return
        self.state.draining = drain
        if drain:
            logger.warning("coordinator asked this agent to drain: no new claims", extra={"action": "drain"})
            self.outbox.stop_claiming()
        else:
            logger.info("drain lifted: claiming again", extra={"action": "drain_lifted"})
            self.outbox.resume_claiming()
            self.state.slot_freed.set()

    async def _wait_for_slot(self) -> int:
        state, max_concurrent = self.state, self.settings.max_concurrent
        while state.draining or state.free_slots(max_concurrent) == 0:
            state.slot_freed.clear()
            await state.slot_freed.wait()
        # A round trip per freed slot would cap throughput at one task per round trip: linger
        # briefly while other tasks are still finishing, then claim for all freed slots at once.
        wanted = min(max_concurrent, self.settings.claim_batch)
        deadline = time.monotonic() + self.settings.claim_linger_s
        while state.running and state.free_slots(max_concurrent) < wanted and not state.draining:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            state.slot_freed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(state.slot_freed.wait(), left)
        return min(state.free_slots(max_concurrent), self.settings.claim_batch)

    async def _claim_loop(self) -> None:
        backoff = Backoff(self.settings.poll_interval, BACKOFF_CAP_S)
        carry_completions = True
        while True:
            max_tasks = await self._wait_for_slot()
            worker_id = self.state.worker_id
            assert worker_id is not None
            batch = self.outbox.take_for_claim(carry=carry_completions)
            acks: list[CompletionAck] | None = None
            sent = time.monotonic()
            delay = 0.0
            try:
                response = await self.client.claim(
                    worker_id,
                    max_tasks,
                    min(self.state.cadence.long_poll_s, 60.0),
                    [item.completion for item in batch],
                )
                acks = response.acks
            except WorkerUnknown:
                logger.warning(
                    "coordinator does not know this worker any more: registering again",
                    extra={"action": "reregister"},
                )
                await self._reregister(worker_id)
                continue
            except CoordinatorUnavailable as exc:
                delay = backoff.next_delay(at_least=exc.retry_after_s)
                logger.warning(
                    "claim failed (%s); retrying in %.1fs", exc, delay, extra={"action": "claim_retry"}
                )
            except CoordinatorError as exc:
                # Claim without completions from now on: the flusher sends them on their own, in
                # smaller batches if need be, so that one bad completion cannot block claiming.
                carry_completions = False
                if exc.status == 413 and batch:
                    logger.warning(
                        "claim with %d completion(s) too large (%s); claiming without them",
                        len(batch),
                        exc,
                        extra={"action": "claim_retry"},
                    )
                else:
                    delay = backoff.next_delay()
                    logger.error(
                        "claim refused (%s); retrying in %.1fs", exc, delay, extra={"action": "claim_retry"}
                    )
            finally:
                self.outbox.claim_sent(batch, acks)
            if acks is None:
                await asyncio.sleep(delay)
                continue
            backoff.reset()
            carry_completions = True
            received = time.monotonic()
            self.state.touch(poll=True)
            self._apply_drain(response.drain)
            for claimed in response.tasks:
                self._start(claimed, received)
            if not response.tasks and not batch and received - sent < self.settings.poll_interval / 10:
                # The coordinator did not hold the request (long polls off): poll at poll_interval.
                await asyncio.sleep(self.settings.poll_interval)

    def _start(self, claimed: ClaimedTask, received: float) -> None:
        task = RunningTask.from_claim(
            claimed,
            received=received,
            lease_s=self.state.cadence.lease_s,
            worker_type=self.settings.worker_type,
            force_cpu=self.settings.force_cpu,
            files_roots=self._files_roots,
        )
        task.ctx.url_policy = self._url_policy
        self.state.running[claimed.job_id] = task
        coro = asyncio.ensure_future(self.runner.run(task))
        self._task_coros.add(coro)
        coro.add_done_callback(self._task_coros.discard)

    async def _send_completions(self, completions: Sequence[TaskCompletion]) -> list[CompletionAck]:
        worker_id = self.state.worker_id
        assert worker_id is not None
        try:
            response = await self.client.complete(worker_id, completions)
        except WorkerUnknown:
            await self._reregister(worker_id)
            raise
        self.state.touch()
        return response.acks


async def _cancel(task: asyncio.Future[None]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def setup_handlers(handlers: Mapping[str, Handler], settings: AgentSettings) -> dict[str, Handler]:
    """Call every handler's ``setup`` once, in a thread; a handler whose setup fails is dropped.

    A ``HandlerError`` (a missing extra or tool) is a one-line notice; anything else is a bug
    and keeps its traceback.
    """
    ready: dict[str, Handler] = {}
    for task_type, handler in handlers.items():
        try:
            await asyncio.to_thread(handler.setup, settings)
        except HandlerError as exc:
            logger.warning(
                "handler %r not offered: %s",
                task_type,
                exc.message,
                extra={"task_type": task_type, "action": "handler_skipped"},
            )
            continue
        except Exception:
            logger.exception(
                "handler %r setup failed: not advertised",
                task_type,
                extra={"task_type": task_type, "action": "handler_skipped"},
            )
            continue
        ready[task_type] = handler
    return ready


async def run_agent(
    settings: AgentSettings,
    *,
    handlers: Mapping[str, Handler] | None = None,
    client: CoordinatorClient | None = None,
    shutdown: Shutdown | None = None,
    install_signals: bool = True,
) -> int:
    """Run an agent until it is told to stop; returns the process exit code.

    ``handlers`` and ``client`` replace discovery and the default client (tests);
    ``shutdown`` lets a caller stop the agent without signals.
    """
    logger.info("starting agent", extra={"action": "config", "config": settings.public_summary()})
    if settings.api_key_file is not None and (warning := shared_key_file_warning(settings.api_key_file)):
        logger.warning("%s", warning, extra={"action": "config"})
    try:
        work_root = prepare_work_dir(settings.work_dir)
        found = dict(handlers) if handlers is not None else discover_handlers(settings.task_types)
        ready = await setup_handlers(found, settings)
        if not ready:
            raise ConfigError("no task handler could be loaded: nothing to advertise")
    except ConfigError as exc:
        logger.critical("cannot start: %s", exc, extra={"action": "fatal"})
        return EXIT_FATAL
    own_client = client is None
    http = client or CoordinatorClient(settings.server_url, settings.api_key.get_secret_value())
    agent = Agent(settings, ready, http, shutdown, work_root)
    health = HealthServer(settings, agent.state, sorted(ready)) if settings.health_port else None
    try:
        if install_signals:
            agent.shutdown.install_signal_handlers()
        if health is not None:
            await health.start()
        return await agent.run()
    except ConfigError as exc:
        logger.critical("cannot start: %s", exc, extra={"action": "fatal"})
        return EXIT_FATAL
    finally:
        agent.shutdown.remove_signal_handlers()
        if health is not None:
            await health.stop()
        if own_client:
            await http.aclose()
