"""Capped exponential backoff with jitter, shared by every retry loop of the agent."""

from __future__ import annotations

import random
from collections.abc import Callable


class Backoff:
    """Delays ``base * 2**n`` capped at ``cap``, each drawn between half and all of that value.

    ``next_delay()`` returns the delay for the current failure and advances; ``reset()`` is called
    after a success.
    """

    def __init__(
        self, base_s: float, cap_s: float = 60.0, *, rand: Callable[[], float] = random.random
    ) -> None:
        self.base_s = max(base_s, 0.01)
        self.cap_s = max(cap_s, self.base_s)
        self.failures = 0
        self._rand = rand

    def peek(self) -> float:
        """The upper bound of the next delay, without advancing."""
        return float(min(self.cap_s, self.base_s * 2 ** min(self.failures, 32)))

    def next_delay(self) -> float:
        ceiling = self.peek()
        self.failures += 1
        return ceiling / 2 + ceiling / 2 * self._rand()

    def reset(self) -> None:
        self.failures = 0
