"""Where the time goes while agents drain a queue of no-op jobs: flame graphs and CPU seconds.

Fills a fresh coordinator (SQLite) with ``--jobs`` no-op jobs, starts ``--agents`` agents
(``--max-concurrent 8``, no media models), and records the coordinator and the first agent with
py-spy (``pip install py-spy``) until the queue is drained. Prints the drain rate by the
coordinator's clocks and the CPU seconds each process used; writes ``coordinator.svg`` and
``agent.svg`` under ``--out``.

Usage: python -m bench.profile_drain [--jobs 3000] [--agents 2] [--out docs/img/flame] [--no-spy]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

from bench.harness.taskpost_runner import taskpost_under_test
from bench.harness.workloads import BenchSettings
from taskpost.launch import ChildProcess, wait_until


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def spy(pid: int, out: Path) -> subprocess.Popen[bytes]:
    args = ["py-spy", "record", "--nonblocking", "--rate", "200", "--pid", str(pid), "--output", str(out)]
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def drain(jobs: int, agents: int, out: Path | None) -> None:
    settings = BenchSettings(jobs=jobs, runs=1, latency_samples=0, worker_counts=(agents,))
    spies: list[subprocess.Popen[bytes]] = []
    with taskpost_under_test(settings, None) as system:
        ids, _ = system.fill(jobs)
        children = system.start_agents(agents)
        try:
            pids = {"coordinator": _pid(system.coordinator.process)}
            pids |= {f"agent {i}": _pid(child) for i, child in enumerate(children)}
            if out is not None:
                spies.append(spy(pids["coordinator"], out / "coordinator.svg"))
                spies.append(spy(pids["agent 0"], out / "agent.svg"))
            before = {name: cpu_seconds(pid) for name, pid in pids.items()}
            wait_until(system.idle, 600, "the queue to drain", interval_s=0.1)
            used = {name: cpu_seconds(pid) - before[name] for name, pid in pids.items()}
        finally:
            for process in spies:
                process.send_signal(signal.SIGINT)
            for process in spies:
                process.wait(timeout=60)
            for child in children:
                child.stop(signal.SIGTERM)
        first, last = system.completed_times(ids)
    span = last - first
    print(f"drained {jobs} jobs in {span:.2f} s: {jobs / span:.0f} jobs/s (coordinator clocks)")
    print("CPU seconds: " + ", ".join(f"{name} {seconds:.2f}" for name, seconds in used.items()))
    print(f"coordinator CPU per job: {used['coordinator'] / jobs * 1000:.2f} ms")


def _pid(process: ChildProcess) -> int:
    assert process.popen is not None
    return process.popen.pid


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=3000)
    parser.add_argument("--agents", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("docs/img/flame"))
    parser.add_argument("--no-spy", action="store_true", help="no flame graphs: CPU seconds only")
    args = parser.parse_args()
    out = None if args.no_spy else args.out
    if out is not None:
        if shutil.which("py-spy") is None:
            parser.error("py-spy is not installed: pip install py-spy (or pass --no-spy)")
        out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    drain(args.jobs, args.agents, out)
    print(f"(whole run {time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
