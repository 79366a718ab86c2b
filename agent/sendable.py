"""What a handler produced, made fit for the coordinator's request models.

The coordinator refuses a body holding text that UTF-8 cannot encode (a lone surrogate, as in a
file name read with ``surrogateescape``), a number that is not finite, or a text over its field's
length. Error messages, tracebacks and progress messages are the agent's to report whatever
they hold, so they are escaped and cut here; a result is the handler's answer and is never
altered, so ``result_problems`` says why it cannot be sent instead.
"""

from __future__ import annotations

import math

from pydantic import ValidationError

from taskpost.protocol import utf8_safe

MAX_PROBLEMS_SHOWN = 5


def sendable_text(text: object, limit: int) -> str:
    """``text`` as a string UTF-8 can encode, cut to its first ``limit`` characters."""
    return utf8_safe(str(text))[:limit]


def sendable_tail(text: object, limit: int) -> str:
    """Like ``sendable_text`` but keeping the last ``limit`` characters (a traceback's end)."""
    safe = utf8_safe(str(text))
    return safe[-limit:] if len(safe) > limit else safe


def sendable_delay(delay_s: float | None) -> float | None:
    """A retry delay the coordinator accepts: a finite number of seconds, or None."""
    if delay_s is None:
        return None
    try:
        value = float(delay_s)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) and value >= 0 else None


def describe_problems(error: ValidationError, field: str | None = None) -> str:
    """What ``error`` found (under ``field`` only, when given), as ``where: what`` (the first few)."""
    skip = 0 if field is None else 1
    found = [
        f"{'.'.join(str(part) for part in item['loc'][skip:]) or field or 'value'}: {item['msg']}"
        for item in error.errors()
        if field is None or (item["loc"] and item["loc"][0] == field)
    ]
    shown = "; ".join(found[:MAX_PROBLEMS_SHOWN]) or str(error)
    more = len(found) - MAX_PROBLEMS_SHOWN
    return utf8_safe(shown + (f"; and {more} more" if more > 0 else ""))
