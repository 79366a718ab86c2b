"""Checking a webhook delivery from a Taskpost coordinator before trusting its body.

The coordinator signs each delivery with its namespace's secret (``GET /api/v1/webhooks/secret``)::

    X-Taskpost-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + raw body)>

Verify the raw bytes as received, before any JSON parsing or re-encoding.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

from taskpost.client.errors import TaskpostError

SIGNATURE_HEADER = "X-Taskpost-Signature"
DEFAULT_TOLERANCE_S = 300.0


class InvalidSignature(TaskpostError):
    """The delivery's signature is missing, malformed, wrong, or too old: do not trust its body."""

    def __init__(self, message: str) -> None:
        super().__init__(message, code="invalid_signature")


def _parse(header: str) -> tuple[int, list[str]]:
    timestamp: int | None = None
    macs: list[str] = []
    for part in header.split(","):
        name, sep, value = part.strip().partition("=")
        if not sep:
            continue
        if name == "t":
            try:
                timestamp = int(value)
            except ValueError:
                raise InvalidSignature(f"{SIGNATURE_HEADER} has a timestamp that is not a number") from None
        elif name == "v1":
            macs.append(value)
    if timestamp is None or not macs:
        raise InvalidSignature(f"{SIGNATURE_HEADER} must look like t=<unix seconds>,v1=<hex>")
    return timestamp, macs


def verify_webhook(
    body: bytes,
    signature_header: str,
    secret: str,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
    now: float | None = None,
) -> dict[str, Any]:
    """The delivery's payload, once its signature matches ``secret`` and is at most
    ``tolerance_s`` seconds from ``now`` (default: the current time); ``InvalidSignature`` otherwise.

    A signature older than the tolerance is refused so that a captured delivery cannot be
    replayed later; keep the clocks of both machines in sync (NTP).
    """
    if not signature_header:
        raise InvalidSignature(f"the delivery has no {SIGNATURE_HEADER} header")
    timestamp, macs = _parse(signature_header)
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    # compare_digest on every candidate (a header may carry several v1 values, e.g. while rotating).
    if not any(hmac.compare_digest(expected.encode(), mac.encode()) for mac in macs):
        raise InvalidSignature("the signature does not match this secret and body")
    age = (time.time() if now is None else now) - timestamp
    if abs(age) > tolerance_s:
        raise InvalidSignature(
            f"the signature is {abs(age):.0f} s {'old' if age > 0 else 'in the future'}, "
            f"more than the {tolerance_s:g} s allowed"
        )
    try:
        payload = json.loads(body)
    except ValueError:
        raise InvalidSignature("the signed body is not JSON") from None
    if not isinstance(payload, dict):
        raise InvalidSignature("the signed body is not a JSON object")
    return payload
