"""The no-op job RQ workers import (``bench.harness.rq_tasks.noop``)."""

from __future__ import annotations


def noop(i: int) -> dict[str, int]:
    return {"i": i}
