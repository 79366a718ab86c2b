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
import tempfile
import time
from datetime import datetime
from pathlib import Path

import httpx

from taskpost.launch import ChildProcess, LocalCoordinator, wait_until
from taskpost.protocol import API_PREFIX


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def spy(pid: int, out: Path) -> subprocess.Popen[bytes]:
    args = ["py-spy", "record", "--nonblocking", "--rate", "200", "--pid", str(pid), "--output", str(out)]
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def drain(jobs: int, agents: int, out: Path | None, work: Path) -> None:
    coordinator = LocalCoordinator(work).start()
    auth = {"Authorization": f"Bearer {coordinator.admin_key}"}
    http = httpx.Client(base_url=coordinator.url + API_PREFIX, headers=auth, timeout=60)
    children: list[ChildProcess] = []
    spies: list[subprocess.Popen[bytes]] = []
    try:
        key = http.post("/keys", json={"role": "worker"}).json()["key"]
        for first in range(0, jobs, 500):
            batch = [{"type": "noop", "params": {"i": i}} for i in range(first, min(jobs, first + 500))]
            http.post("/jobs/batch", json={"jobs": batch}).raise_for_status()
        for index in range(agents):
            args = ["--max-concurrent", "8", "--task-type", "noop", "--health-port", "0"]
            args += ["--log-level", "warning", "--name", f"profile-{index}"]
            children.append(coordinator.start_agent(key, *args, log_name=f"agent-{index}.log"))
        pids = {"coordinator": coordinator.process.popen.pid}
        pids |= {f"agent {i}": child.popen.pid for i, child in enumerate(children)}
        if out is not None:
            spies.append(spy(pids["coordinator"], out / "coordinator.svg"))
            spies.append(spy(pids["agent 0"], out / "agent.svg"))
        before = {name: cpu_seconds(pid) for name, pid in pids.items()}

        def drained() -> bool:
            queued = http.get("/jobs", params={"state": "queued", "limit": 1}).json()["jobs"]
            running = http.get("/jobs", params={"state": "processing", "limit": 1}).json()["jobs"]
            return not queued and not running

        wait_until(drained, 600, "the queue to drain", interval_s=0.1)
        used = {name: cpu_seconds(pid) - before[name] for name, pid in pids.items()}
        starts, ends = [], []
        cursor = None
        while True:
            params: dict[str, str | int] = {"state": "completed", "limit": 500}
            if cursor:
                params["cursor"] = cursor
            page = http.get("/jobs", params=params).json()
            for job in page["jobs"]:
                starts.append(_seconds(job["started_at"]))
                ends.append(_seconds(job["ended_at"]))
            cursor = page.get("next_cursor")
            if not cursor:
                break
        span = max(ends) - min(starts)
        print(f"drained {len(ends)} jobs in {span:.2f} s: {len(ends) / span:.0f} jobs/s (coordinator clocks)")
        print("CPU seconds: " + ", ".join(f"{name} {seconds:.2f}" for name, seconds in used.items()))
        print(f"coordinator CPU per job: {used['coordinator'] / len(ends) * 1000:.2f} ms")
    finally:
        for process in spies:
            process.send_signal(signal.SIGINT)
        for process in spies:
            process.wait(timeout=60)
        for child in children:
            child.stop(signal.SIGTERM)
        coordinator.stop()
        http.close()


def _seconds(stamp: str) -> float:
    return datetime.fromisoformat(stamp).timestamp()


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
    with tempfile.TemporaryDirectory(prefix="taskpost-profile-") as tmp:
        started = time.perf_counter()
        drain(args.jobs, args.agents, out, Path(tmp))
        print(f"(whole run {time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
