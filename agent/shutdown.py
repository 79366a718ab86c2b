"""Shutdown requests: the first SIGTERM/SIGINT asks for a graceful stop, the second forces it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Collection
from types import FrameType

logger = logging.getLogger(__name__)

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Shutdown:
    """Two events: ``requested`` (stop claiming, finish running tasks) and ``forced`` (stop now)."""

    def __init__(self) -> None:
        self.requested = asyncio.Event()
        self.forced = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._installed: list[signal.Signals] = []
        self._previous: dict[signal.Signals, object] = {}

    def request(self) -> None:
        """Ask for a graceful stop; a second call forces it."""
        if self.requested.is_set():
            self.force()
            return
        self.requested.set()

    def force(self) -> None:
        self.requested.set()
        self.forced.set()

    async def wait_requested(self, delay_s: float) -> bool:
        """Sleep up to ``delay_s``; True when a shutdown was requested meanwhile."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.requested.wait(), delay_s)
        return self.requested.is_set()

    async def wait_tasks(self, tasks: Collection[asyncio.Future[None]], grace_s: float) -> None:
        """Wait until ``tasks`` are done, ``grace_s`` passes or a stop is forced."""
        if not tasks:
            return
        forced = asyncio.ensure_future(self.forced.wait())
        all_done = asyncio.ensure_future(asyncio.wait(set(tasks)))
        try:
            await asyncio.wait({all_done, forced}, timeout=grace_s, return_when=asyncio.FIRST_COMPLETED)
        finally:
            forced.cancel()
            all_done.cancel()

    # -- signals ----------------------------------------------------------------------------
    def _on_signal(self, signum: int) -> None:
        name = signal.Signals(signum).name
        if self.requested.is_set():
            logger.warning("%s again: stopping now", name, extra={"action": "force_stop"})
        else:
            logger.info("%s received: stopping gracefully", name, extra={"action": "stop_requested"})
        self.request()

    def install_signal_handlers(self) -> None:
        """Route SIGTERM and SIGINT to ``request`` (loop handlers, or ``signal.signal`` on Windows)."""
        loop = self._loop = asyncio.get_running_loop()
        for sig in SIGNALS:
            try:
                loop.add_signal_handler(sig, self._on_signal, int(sig))
            except (NotImplementedError, RuntimeError):
                self._previous[sig] = signal.signal(sig, self._threadsafe_handler)
            self._installed.append(sig)

    def _threadsafe_handler(self, signum: int, frame: FrameType | None) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._on_signal, signum)

    def remove_signal_handlers(self) -> None:
        for sig in self._installed:
            if sig in self._previous:
                signal.signal(sig, self._previous.pop(sig))  # type: ignore[arg-type]
            elif self._loop is not None:
                self._loop.remove_signal_handler(sig)
        self._installed.clear()
