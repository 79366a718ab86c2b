"""PNGs (matplotlib, Agg): drain throughput against worker count, and latency percentiles."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

from bench.harness.stats import median
from bench.harness.workloads import DRAIN, LATENCY_P50, LATENCY_P90, LATENCY_P99, Sample

PERCENTILES = (LATENCY_P50, LATENCY_P90, LATENCY_P99)


def _medians(samples: Sequence[Sample], measure: str) -> dict[str, dict[int, float]]:
    """system -> workers -> median over runs."""
    values: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for sample in samples:
        if sample.measure == measure:
            values[sample.system][sample.workers].append(sample.value)
    return {system: {w: median(v) for w, v in by_workers.items()} for system, by_workers in values.items()}


def write_plots(samples: Sequence[Sample], folder: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    written = []

    figure, axes = plt.subplots(figsize=(7, 4.5))
    drain = _medians(samples, DRAIN)
    axes.set_xticks(sorted({count for by_workers in drain.values() for count in by_workers}))
    for system, by_workers in sorted(drain.items()):
        counts = sorted(by_workers)
        axes.plot(counts, [by_workers[c] for c in counts], marker="o", label=system)
    axes.set_xlabel("agents (Taskpost) / worker processes (RQ, Celery)")
    axes.set_ylabel("no-op jobs/s, first start to last end")
    axes.set_title("Drain throughput against worker count (median of runs)")
    axes.grid(alpha=0.3)
    axes.legend(fontsize="small")
    throughput = folder / "throughput_vs_workers.png"
    figure.tight_layout()
    figure.savefig(throughput, dpi=120)
    plt.close(figure)
    written.append(throughput)

    by_percentile = {measure: _medians(samples, measure) for measure in PERCENTILES}
    systems = sorted({system for medians in by_percentile.values() for system in medians})
    figure, axes = plt.subplots(figsize=(7, 4.5))
    width = 0.8 / max(1, len(PERCENTILES))
    for offset, measure in enumerate(PERCENTILES):
        heights = [next(iter(by_percentile[measure].get(system, {0: 0.0}).values())) for system in systems]
        positions = [index + offset * width for index in range(len(systems))]
        axes.bar(positions, heights, width, label=measure.split()[-1])
    axes.set_xticks([index + width for index in range(len(systems))], systems, rotation=15, ha="right")
    axes.set_ylabel("submit-to-start latency, idle queue (ms)")
    axes.set_title("Latency percentiles (median of runs)")
    axes.grid(axis="y", alpha=0.3)
    axes.legend()
    latency = folder / "latency_percentiles.png"
    figure.tight_layout()
    figure.savefig(latency, dpi=120)
    plt.close(figure)
    written.append(latency)
    return written
