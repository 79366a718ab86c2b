"""``taskpost purge``: durations as people write them, the confirmation, and calls until done.

The same steps serve the local database and the HTTP API: the command hands in one function
that takes a ``PurgeRequest`` body and returns a ``PurgeResult`` as JSON.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from taskpost.remote import CliError

DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhd])")

PurgeCall = Callable[[dict[str, Any]], dict[str, Any]]
"""One purge request (a ``PurgeRequest`` body) to its ``PurgeResult`` as JSON."""


class InvalidDuration(ValueError):
    """A duration that is not a number followed by s, m, h or d."""


def parse_duration(text: str) -> float:
    """Seconds in ``text``: a number and a unit, ``90s``, ``30m``, ``12h``, ``7d`` or ``1.5d``."""
    match = _DURATION.fullmatch(text.strip().lower())
    if match is None:
        raise InvalidDuration(
            f"invalid duration {text!r}: write a number and a unit, s, m, h or d (e.g. 90s, 30m, 12h, 7d)"
        )
    return float(match.group(1)) * DURATION_UNITS[match.group(2)]


def request_body(states: Sequence[str], older_than_s: float, job_type: str | None) -> dict[str, Any]:
    """A ``PurgeRequest`` body, checked here so that the local database and HTTP fail alike."""
    from pydantic import ValidationError

    from taskpost.protocol.admin import PurgeRequest

    body: dict[str, Any] = {
        "states": [str(state) for state in states],
        "older_than_s": older_than_s,
        "type": job_type,
    }
    try:
        PurgeRequest.model_validate(body)
    except ValidationError as exc:
        raise CliError(
            "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        ) from None
    return body


def total(result: dict[str, Any]) -> int:
    return sum(result["jobs"].values())


def describe(result: dict[str, Any]) -> str:
    """``12 jobs (dead 10, completed 2)``."""
    parts = ", ".join(f"{state} {count}" for state, count in result["jobs"].items())
    return f"{total(result)} job{'' if total(result) == 1 else 's'} ({parts})"


def summary(result: dict[str, Any], where: str) -> str:
    """The line ``taskpost purge`` prints for ``result``."""
    cutoff = f"that ended by {result['ended_before']}, {where}"
    if total(result) == 0:
        return f"nothing to delete: no {' or '.join(result['jobs'])} job {cutoff}"
    verb = "would delete" if result["dry_run"] else "deleted"
    return f"{verb} {describe(result)} {cutoff}"


def purge(
    call: PurgeCall, body: dict[str, Any], confirm: Callable[[dict[str, Any]], bool] | None
) -> dict[str, Any] | None:
    """Delete what ``body`` selects, calling again while the answer says ``more``.

    With ``confirm``, a dry run comes first and ``confirm`` sees its result; nothing is deleted
    when it says no (None is returned) or when nothing matches. Every later call keeps the dry
    run's cutoff, so no job that ended after the count was taken is deleted.
    """
    started = time.monotonic()
    if confirm is not None:
        preview = call({**body, "dry_run": True})
        if total(preview) == 0:
            return preview
        if not confirm(preview):
            return None
    deleted: Counter[str] = Counter()
    first: dict[str, Any] | None = None
    while True:
        # The server measures "older than" from its own clock: adding the time spent so far
        # keeps the cutoff where it was when this started, whatever the clocks say.
        elapsed = time.monotonic() - started
        result = call({**body, "dry_run": False, "older_than_s": body["older_than_s"] + elapsed})
        first = first or result
        deleted.update(result["jobs"])
        if not result["more"]:
            break
    jobs = {state: deleted[state] for state in first["jobs"]}
    return {**first, "jobs": jobs, "more": False}
