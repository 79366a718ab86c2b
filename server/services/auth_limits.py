"""The failed-authentication limit, shared by the API, /metrics and the dashboard's sign-in."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable


class AuthFailureLimiter:
    """A token bucket per client address, spent by failed authentications.

    An address with an empty bucket is refused before its key is even looked at: answering 429
    to a wrong key but 200 to a right one would let a guesser carry on at full speed.
    """

    def __init__(
        self,
        rate_per_s: float,
        burst: int,
        clock: Callable[[], float] = time.monotonic,
        max_addresses: int = 10_000,
    ) -> None:
        self.rate_per_s = rate_per_s
        self.burst = float(burst)
        self._clock = clock
        self._max_addresses = max_addresses
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        """address -> (tokens, when counted); an address not here has a full bucket."""

    def _tokens(self, address: str, now: float) -> float:
        tokens, at = self._buckets.get(address, (self.burst, now))
        return min(self.burst, tokens + (now - at) * self.rate_per_s)

    def retry_after_s(self, address: str) -> float | None:
        """None when ``address`` may try a key now, else how long it has to wait."""
        tokens = self._tokens(address, self._clock())
        if tokens >= 1:
            return None
        return (1 - tokens) / self.rate_per_s

    def record_failure(self, address: str) -> bool:
        """Spend one token; True when this failure used the last one."""
        now = self._clock()
        tokens = self._tokens(address, now) - 1
        self._buckets[address] = (tokens, now)
        self._buckets.move_to_end(address)
        while len(self._buckets) > self._max_addresses:
            self._buckets.popitem(last=False)
        return tokens < 1
