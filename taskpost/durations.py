"""Durations as people write them on a command line (``90d``, ``12h``, ``30m``, ``45s``), and
how long ago something happened, written the same way."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import typer

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhd])")


class InvalidDuration(ValueError):
    """A duration that is not a number followed by s, m, h or d."""


def parse(text: str) -> float:
    """Seconds in ``text``: a number and a unit, ``45s``, ``30m``, ``12h``, ``90d`` or ``1.5d``."""
    match = _DURATION.fullmatch(text.strip().lower())
    if match is None:
        raise InvalidDuration(
            f"invalid duration {text!r}: write a number and a unit, s, m, h or d (e.g. 90s, 30m, 12h, 7d)"
        )
    return float(match.group(1)) * UNITS[match.group(2)]


def option(text: str | None, flag: str) -> float | None:
    """``parse`` for a command-line option: a bad duration is a usage error naming ``flag``."""
    if text is None:
        return None
    try:
        return parse(text)
    except InvalidDuration as exc:
        raise typer.BadParameter(str(exc), param_hint=flag) from None


def short(seconds: float) -> str:
    """``45s``, ``12m``, ``3h``, ``2d``: the largest whole unit, for tables."""
    seconds = max(seconds, 0.0)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"


def ago(when: datetime, now: datetime | None = None) -> str:
    """``12s ago``: how long before ``now`` (default: this moment) ``when`` was."""
    now = now or datetime.now(UTC)
    return short((now - when).total_seconds()) + " ago"


def until(when: datetime, now: datetime | None = None) -> str:
    """``in 89d``, or ``expired`` once ``when`` has passed."""
    now = now or datetime.now(UTC)
    left = (when - now).total_seconds()
    return "expired" if left <= 0 else "in " + short(left)
