"""When a request is sent again: lost connections and 503s, with backoff, honouring Retry-After.

A request whose answer may have been lost after the coordinator acted on it (a read error, a
cut connection) is resent only when that is harmless (``Call.resendable``: reads, and submits,
which carry an idempotency key). A refused connection or a 503 means nothing was done.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import tenacity

from taskpost.client.errors import ServerUnavailable, TaskpostError
from taskpost.client.requests import Call

MAX_RETRY_AFTER_S = 60.0

_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


def _should_retry(call: Call, exc: BaseException | None) -> bool:
    if isinstance(exc, ServerUnavailable):
        return True
    if isinstance(exc, _NOT_SENT):
        return True
    return call.resendable and isinstance(exc, httpx.TransportError)


def _backoff(first_s: float, max_s: float) -> Callable[[tenacity.RetryCallState], float]:
    exponential = tenacity.wait_exponential(multiplier=first_s, max=max_s) + tenacity.wait_random(0, first_s)

    def wait(state: tenacity.RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, TaskpostError) and exc.retry_after_s is not None:
            return min(exc.retry_after_s, MAX_RETRY_AFTER_S)
        return float(exponential(state))

    return wait


def policy(call: Call, retries: int, first_backoff_s: float, max_backoff_s: float) -> dict[str, Any]:
    """Keyword arguments for ``tenacity.Retrying`` or ``AsyncRetrying`` around one call."""
    return {
        "retry": tenacity.retry_if_exception(lambda exc: _should_retry(call, exc)),
        "wait": _backoff(first_backoff_s, max_backoff_s),
        "stop": tenacity.stop_after_attempt(retries + 1),
        "reraise": True,
    }


def unreachable(exc: httpx.TransportError, base_url: str) -> ServerUnavailable:
    """What a caller sees once every attempt failed to reach the coordinator."""
    return ServerUnavailable(
        f"cannot reach the coordinator at {base_url}: {exc!r}", code="unreachable", status=None
    )
