"""Capped exponential backoff with jitter, shared by every retry loop of the agent.

The retry loops (claim, registration, completions) are long-lived and must keep their state
between attempts, so they call ``next_delay()`` themselves instead of wrapping one call in
tenacity's ``Retrying``; the growth and the cap still come from tenacity's ``wait_exponential``.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

from tenacity import RetryCallState, wait_exponential


@dataclass
class _AttemptNumber:
    """The one field of ``RetryCallState`` that tenacity's wait strategies read."""

    attempt_number: int


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
        self._ceiling = wait_exponential(multiplier=self.base_s, max=self.cap_s, exp_base=2)

    def peek(self) -> float:
        """The upper bound of the next delay, without advancing."""
        state = cast(RetryCallState, _AttemptNumber(self.failures + 1))
        return float(self._ceiling(state))

    def next_delay(self, at_least: float | None = None) -> float:
        """The delay for this failure, never below ``at_least`` (the coordinator's Retry-After)."""
        ceiling = self.peek()
        self.failures += 1
        return max(ceiling / 2 + ceiling / 2 * self._rand(), at_least or 0.0)

    def reset(self) -> None:
        self.failures = 0
