"""Delay before the next attempt: capped exponential backoff with jitter."""

from __future__ import annotations

import random
from typing import Any


def retry_delay_s(policy: dict[str, Any], attempt: int, rng: random.Random | None = None) -> float:
    """Delay after failed attempt number ``attempt`` (1-based).

    ``min(cap, base * factor ** (attempt - 1))``, then, with jitter, a uniform draw between half
    of that and all of it, so that jobs failing together do not come back together.
    """
    base = float(policy.get("base_s", 1.0))
    factor = float(policy.get("factor", 2.0))
    cap = float(policy.get("cap_s", 300.0))
    exponent = max(attempt - 1, 0)
    delay = cap if exponent > 64 else min(cap, base * factor**exponent)
    if policy.get("jitter", True):
        delay = (rng or random).uniform(delay / 2, delay)
    return delay
