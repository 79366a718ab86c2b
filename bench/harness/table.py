"""The markdown table: medians, ranges, ratios to RQ and to Celery's best, and the issue's targets."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from bench.harness.stats import median, ratio, value_range
from bench.harness.workloads import (
    CELERY,
    CELERY_PREFORK,
    CELERY_SOLO,
    DRAIN,
    ENQUEUE,
    LATENCY_P50,
    LATENCY_P99,
    RQ,
    TABLE_WORKERS,
    TASKPOST_PG,
    TASKPOST_SQLITE,
    Sample,
)

TASKPOST_SYSTEMS = (TASKPOST_SQLITE, TASKPOST_PG)
MEASURE_LABELS = {
    ENQUEUE: "enqueue, batches of 500 (jobs/s)",
    DRAIN: f"drain, {TABLE_WORKERS} workers (jobs/s)",
    LATENCY_P50: "submit-to-start p50, idle (ms)",
    LATENCY_P99: "submit-to-start p99, idle (ms)",
}
HIGHER_IS_BETTER = {ENQUEUE: True, DRAIN: True, LATENCY_P50: False, LATENCY_P99: False}
P99_LIMIT_MS = 10.0
DASH = "\u2013"
"""The en dash of the ranges in the table."""


@dataclass(frozen=True)
class Series:
    """One system's values for one measure, by run."""

    system: str
    measure: str
    workers: int
    by_run: dict[int, float]

    @property
    def median(self) -> float:
        return median(list(self.by_run.values()))


def _system_label(system: str, measure: str, workers: int, concurrency: int) -> str:
    if measure == ENQUEUE:
        return system.split(" ")[0] if system in (RQ, CELERY) else system
    if system in TASKPOST_SYSTEMS:
        return f"{system}, {workers} agent{'s' if workers > 1 else ''} x {concurrency} slots"
    if system == CELERY_PREFORK:
        return f"Celery prefork -c {workers}"
    return f"{system} x{workers}"


def collect(samples: Sequence[Sample], system: str, measure: str) -> Series | None:
    workers = TABLE_WORKERS if measure == DRAIN else None
    by_run = {
        s.run: s.value
        for s in samples
        if s.system == system and s.measure == measure and (workers is None or s.workers == workers)
    }
    if not by_run:
        return None
    return Series(system, measure, workers or (0 if measure == ENQUEUE else 1), by_run)


def _pick(candidates: Sequence[Series], higher_is_better: bool) -> Series | None:
    if not candidates:
        return None
    chooser: Callable[..., Series] = max if higher_is_better else min
    return chooser(candidates, key=lambda series: series.median)


def anchors(samples: Sequence[Sample], measure: str) -> tuple[Series | None, Series | None]:
    """RQ's series and Celery's best (by median) for ``measure``."""
    rq = collect(samples, RQ, measure)
    celery_systems = (CELERY,) if measure == ENQUEUE else (CELERY_SOLO, CELERY_PREFORK)
    celery = [series for name in celery_systems if (series := collect(samples, name, measure))]
    return rq, _pick(celery, HIGHER_IS_BETTER[measure])


@dataclass(frozen=True)
class RatioCell:
    median_ratio: float
    run_range: tuple[float, float] | None

    def render(self) -> str:
        if math.isnan(self.median_ratio):
            return "—"
        text = f"{self.median_ratio:.2f}x"
        if self.run_range and self.run_range[0] != self.run_range[1]:
            text += f" ({self.run_range[0]:.2f}{DASH}{self.run_range[1]:.2f})"
        return text


def ratio_cell(series: Series, anchor: Series | None) -> RatioCell:
    """Median over median, and the range of the per-run ratios (runs both have)."""
    if anchor is None:
        return RatioCell(math.nan, None)
    per_run = [
        ratio(value, anchor.by_run[run]) for run, value in series.by_run.items() if run in anchor.by_run
    ]
    return RatioCell(ratio(series.median, anchor.median), value_range(per_run) if per_run else None)


def target(measure: str, vs_rq: RatioCell, vs_celery: RatioCell, series: Series) -> tuple[str, str]:
    """The issue's target for a Taskpost row and whether the medians meet it."""

    def verdict(*conditions: bool | None) -> str:
        if any(condition is None for condition in conditions):
            return "n/a"
        return "met" if all(conditions) else "not met"

    def at_least(cell: RatioCell, times: float) -> bool | None:
        return None if math.isnan(cell.median_ratio) else cell.median_ratio >= times

    if measure == ENQUEUE:
        return "≥ 2x RQ", verdict(at_least(vs_rq, 2))
    if measure == DRAIN:
        return "≥ 2x Celery best and ≥ 4x RQ x2", verdict(at_least(vs_celery, 2), at_least(vs_rq, 4))
    if measure == LATENCY_P50:
        no_worse = None if math.isnan(vs_rq.median_ratio) else vs_rq.median_ratio <= 1
        return "≤ RQ's p50", verdict(no_worse)
    return f"< {P99_LIMIT_MS:g} ms", verdict(series.median < P99_LIMIT_MS)


def _number(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.2f}"


def render(samples: Sequence[Sample], systems: Sequence[str], concurrency: int) -> str:
    """One markdown table, rows = measure x system, in the order of ``systems``."""
    lines = [
        f"| measure | system | median | min{DASH}max | runs | vs RQ | vs Celery best | target | status |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for measure in (ENQUEUE, DRAIN, LATENCY_P50, LATENCY_P99):
        rq, celery_best = anchors(samples, measure)
        names = [name for name in systems if measure == ENQUEUE or name != CELERY]
        if measure == ENQUEUE and CELERY_SOLO in systems:
            names = [name for name in names if name not in (CELERY_SOLO, CELERY_PREFORK)] + [CELERY]
        for name in names:
            series = collect(samples, name, measure)
            if series is None:
                continue
            low, high = value_range(list(series.by_run.values()))
            cells = [MEASURE_LABELS[measure], _system_label(name, measure, series.workers, concurrency)]
            cells += [_number(series.median), f"{_number(low)}{DASH}{_number(high)}", str(len(series.by_run))]
            if name in TASKPOST_SYSTEMS:
                vs_rq, vs_celery = ratio_cell(series, rq), ratio_cell(series, celery_best)
                goal, status = target(measure, vs_rq, vs_celery, series)
                cells += [vs_rq.render(), vs_celery.render(), goal, status]
            else:
                best = " (Celery best)" if celery_best is not None and name == celery_best.system else ""
                cells += ["", "", "", f"anchor{best}" if name == RQ or best else ""]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
