"""Daemon threads for handler calls, kept for the next call once idle.

Starting a thread for every task costs more than a short task itself: ``Thread.start`` waits
until the new thread runs, which on a busy machine is a scheduler round. A thread is not taken
from a pool with a fixed size either, because a handler that ignores ``ctx.is_cancelled()``
cannot be stopped: its thread stays busy in the background, and the next task must not wait
for it. So a call takes an idle thread when there is one and starts a new one otherwise; a
thread that finishes its call waits for the next one, unless ``keep_idle`` threads already do,
in which case it ends.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from queue import SimpleQueue

Call = Callable[[], None]


class HandlerThreads:
    """Runs calls on daemon threads, reusing idle ones (see the module's docstring)."""

    def __init__(self, keep_idle: int = 32, name: str = "handler") -> None:
        self.keep_idle = keep_idle
        self.name = name
        self._idle: deque[SimpleQueue[Call]] = deque()
        self._lock = threading.Lock()

    def run(self, call: Call) -> None:
        """Start ``call`` on an idle thread, or a new one; returns at once."""
        with self._lock:
            inbox = self._idle.pop() if self._idle else None
        if inbox is None:
            inbox = SimpleQueue()
            threading.Thread(target=self._serve, args=(inbox,), name=self.name, daemon=True).start()
        inbox.put(call)

    @property
    def idle(self) -> int:
        """Threads waiting for a call now."""
        return len(self._idle)

    def _serve(self, inbox: SimpleQueue[Call]) -> None:
        while True:
            call = inbox.get()
            call()
            del call  # nothing of a finished call stays alive while the thread waits
            with self._lock:
                # Only a thread that is not in the idle list may end: none can be handed a call
                # after it stopped reading its inbox.
                if len(self._idle) >= self.keep_idle:
                    return
                self._idle.append(inbox)
