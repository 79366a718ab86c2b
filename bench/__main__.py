"""``python -m bench``: Taskpost (SQLite and PostgreSQL), RQ and Celery side by side on this machine.

Installs nothing: it says what is missing and skips that system (``--require-all`` fails instead).
Prints one markdown table; ``--out FILE`` also writes it there, with FILE's ``.json`` beside it
(every raw sample); ``--plots DIR`` writes PNGs. Run from the repository root.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from bench.harness import processes, report
from bench.harness.checks import find_availability, machine_facts
from bench.harness.orchestrate import progress, run_all
from bench.harness.workloads import TABLE_WORKERS, BenchSettings

SMOKE = BenchSettings(jobs=40, runs=1, latency_samples=10, worker_counts=(TABLE_WORKERS,))


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=5000, help="no-op jobs per enqueue/drain round")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--latency-samples", type=int, default=200)
    parser.add_argument(
        "--agents",
        type=int,
        nargs="+",
        default=[1, 2, 4],
        help=f"agent / worker counts for the drain (the table uses {TABLE_WORKERS}, always run)",
    )
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="tiny numbers to check that everything works (overrides the four options above)",
    )
    parser.add_argument("--out", type=Path, help="also write the markdown here, and the raw JSON beside it")
    parser.add_argument("--plots", type=Path, metavar="DIR", help="write PNG plots here (needs matplotlib)")
    parser.add_argument("--require-all", action="store_true", help="fail when a system cannot run")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    counts = tuple(sorted({*args.agents, TABLE_WORKERS}))
    settings = SMOKE if args.smoke else BenchSettings(args.jobs, args.runs, args.latency_samples, counts)
    available = find_availability()
    for line in available.missing:
        progress(f"missing: {line}")
    if args.require_all and available.missing:
        progress("--require-all: stopping")
        return 2
    facts = machine_facts()
    outcome = run_all(settings, available, args.require_all)
    left = processes.left_running()
    command = shlex.join(["python", "-m", "bench", *(sys.argv[1:] if argv is None else argv)])
    text = report.markdown(outcome, settings, facts, command, available.missing)
    print(text)
    pids = processes.STARTED_PIDS
    print(f"Processes started: {len(pids)}; still running: {left or 'none'}")
    if args.out:
        json_path = report.write(args.out, text, report.raw_json(outcome, settings, facts, pids, left))
        progress(f"wrote {args.out} and {json_path}")
    if args.plots and available.plots:
        from bench.harness.plots import write_plots

        for path in write_plots(outcome.samples, args.plots):
            progress(f"wrote {path}")
    return 1 if left else 0


if __name__ == "__main__":
    sys.exit(main())
