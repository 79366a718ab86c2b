"""``taskpost purge``: the confirmation, and calls until done (durations: taskpost.durations).

The command hands in one function that sends a purge request (``older_than_s``, ``dry_run``)
to the coordinator and returns its ``PurgeResult``.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable

from taskpost.protocol.admin import PurgeResult

PurgeCall = Callable[[float, bool], PurgeResult]
"""``(older_than_s, dry_run)`` to the coordinator's answer."""


def total(result: PurgeResult) -> int:
    return sum(result.jobs.values())


def describe(result: PurgeResult) -> str:
    """``12 jobs (dead 10, completed 2)``."""
    parts = ", ".join(f"{state} {count}" for state, count in result.jobs.items())
    return f"{total(result)} job{'' if total(result) == 1 else 's'} ({parts})"


def summary(result: PurgeResult, where: str) -> str:
    """The line ``taskpost purge`` prints for ``result``."""
    cutoff = f"that ended by {result.ended_before.isoformat()}, {where}"
    if total(result) == 0:
        return f"nothing to delete: no {' or '.join(result.jobs)} job {cutoff}"
    verb = "would delete" if result.dry_run else "deleted"
    return f"{verb} {describe(result)} {cutoff}"


def purge(
    call: PurgeCall, older_than_s: float, confirm: Callable[[PurgeResult], bool] | None
) -> PurgeResult | None:
    """Delete the jobs that ended ``older_than_s`` ago, calling again while the answer says ``more``.

    With ``confirm``, a dry run comes first and ``confirm`` sees its result; nothing is deleted
    when it says no (None is returned) or when nothing matches. Every later call keeps the dry
    run's cutoff, so no job that ended after the count was taken is deleted.
    """
    started = time.monotonic()
    if confirm is not None:
        preview = call(older_than_s, True)
        if total(preview) == 0:
            return preview
        if not confirm(preview):
            return None
    deleted: Counter[str] = Counter()
    first: PurgeResult | None = None
    while True:
        # The server measures "older than" from its own clock: adding the time spent so far
        # keeps the cutoff where it was when this started, whatever the clocks say.
        result = call(older_than_s + (time.monotonic() - started), False)
        first = first or result
        deleted.update(result.jobs)
        if not result.more:
            break
    jobs = {state: deleted[state] for state in first.jobs}
    return first.model_copy(update={"jobs": jobs, "more": False})
