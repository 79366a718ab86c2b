"""What idle agents cost a coordinator: many agents long-polling one SQLite coordinator.

Starts a coordinator (SQLite, default settings: 20 s long poll, 10 s heartbeat) and ``--agents``
real agents (``taskpost.agent.runner.run_agent`` with the no-op handler), ``--per-process`` of
them in one event loop per child process (one process per agent would measure Python's memory,
not the agent's), each with its own work folder and no health server. Once every agent is listed
alive and ``--settle`` seconds passed, for ``--seconds``:

- the coordinator's RSS (VmRSS, /proc/<pid>/status) and CPU (utime + stime, /proc/<pid>/stat);
- requests per second per agent, by route, from the coordinator's own
  ``taskpost_http_request_duration_seconds_count`` (/metrics, scraped with the admin key; a long
  poll is counted when it ends);
- the agent processes' RSS and CPU, per agent.

Then one no-op job is submitted while every agent holds a claim: which agent took it, its
submit-to-start (``started_at - created_at``, both stamped by the coordinator), and the
coordinator CPU that one wake-up of every held claim cost (the second after the submit, less
the idle rate). The coordinator's RSS and idle CPU before any agent starts are the baseline.

Run from the repository root: python -m bench.idle_agents [--agents 200] [--seconds 60]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from taskpost.agent.handlers.noop import NoopHandler
from taskpost.agent.runner import run_agent
from taskpost.agent.settings import AgentSettings
from taskpost.agent.shutdown import Shutdown
from taskpost.launch import LocalCoordinator, child_env, wait_until
from taskpost.protocol import API_PREFIX

KEY_VARIABLE = "BENCH_IDLE_AGENTS_KEY"
"""How a host process gets the worker key: in its environment, not on its command line."""
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
WAKE_UP_WINDOW_S = 1.0
BASELINE_S = 10.0
"""The coordinator's idle CPU is measured this long before any agent starts."""
REQUEST_COUNT = re.compile(
    r"^taskpost_http_request_duration_seconds_count\{(?P<labels>.*)\} (?P<value>\S+)$", re.M
)
LABEL = re.compile(r'(\w+)="([^"]*)"')


# --- the agent hosts (child processes) -----------------------------------------------------


async def host_agents(server_url: str, api_key: str, names: list[str], work: Path) -> int:
    """Run one real agent per name in this event loop until SIGTERM; the worst exit code."""
    shutdowns = [Shutdown() for _ in names]
    loop = asyncio.get_running_loop()

    def stop_all() -> None:
        for shutdown in shutdowns:
            shutdown.request()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop_all)
    runs = []
    for name, shutdown in zip(names, shutdowns, strict=True):
        settings = AgentSettings(
            server_url=server_url,
            api_key=api_key,
            name=name,
            health_port=0,
            work_dir=work / name,
            log_level="WARNING",
        )
        runs.append(
            run_agent(settings, handlers={"noop": NoopHandler()}, install_signals=False, shutdown=shutdown)
        )
    codes = await asyncio.gather(*runs)
    return max(codes, default=0)


def host_main(server_url: str, names: list[str], work: Path) -> None:
    logging.basicConfig(
        level=logging.DEBUG if os.environ.get("BENCH_DEBUG") else logging.WARNING,
        format="%(asctime)s %(name)s %(message)s",
    )
    sys.exit(asyncio.run(host_agents(server_url, os.environ[KEY_VARIABLE], names, work)))


# --- measuring ----------------------------------------------------------------------------------


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def cpu_seconds(pid: int) -> float:
    # Fields after the command name (which may hold spaces, hence the split at ')').
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def request_counts(admin: httpx.Client) -> Counter[str]:
    """Requests the coordinator answered so far, by ``METHOD route``."""
    response = admin.get("/metrics")
    response.raise_for_status()
    counts: Counter[str] = Counter()
    for match in REQUEST_COUNT.finditer(response.text):
        labels = dict(LABEL.findall(match["labels"]))
        counts[f"{labels['method']} {labels['route']}"] += round(float(match["value"]))
    return counts


@dataclass
class Window:
    seconds: float
    coordinator_cpu_s: float
    hosts_cpu_s: float
    requests: Counter[str]


def measure_window(coordinator_pid: int, host_pids: list[int], admin: httpx.Client, seconds: float) -> Window:
    before = request_counts(admin)
    cpu_before = cpu_seconds(coordinator_pid)
    hosts_before = sum(cpu_seconds(pid) for pid in host_pids)
    began = time.monotonic()
    time.sleep(seconds)
    elapsed = time.monotonic() - began
    cpu = cpu_seconds(coordinator_pid) - cpu_before
    hosts = sum(cpu_seconds(pid) for pid in host_pids) - hosts_before
    return Window(elapsed, cpu, hosts, request_counts(admin) - before)


def _seconds(stamp: str) -> float:
    return datetime.fromisoformat(stamp).timestamp()


def one_job(admin: httpx.Client, coordinator_pid: int, idle_cpu_per_s: float) -> dict[str, Any]:
    """Submit a no-op job to the idle crowd: who took it, how fast, and the coordinator CPU of the
    second after the submit above its idle rate (nothing polls it meanwhile)."""
    cpu_before = cpu_seconds(coordinator_pid)
    began = time.monotonic()
    job = admin.post("/jobs", json={"type": "noop"}).json()["job"]
    time.sleep(WAKE_UP_WINDOW_S)
    cpu = cpu_seconds(coordinator_pid) - cpu_before - idle_cpu_per_s * (time.monotonic() - began)

    def completed() -> dict[str, Any] | None:
        current: dict[str, Any] = admin.get(f"/jobs/{job['id']}").json()
        return current if current["state"] == "completed" else None

    done = wait_until(completed, 60, "the job", interval_s=0.05)
    workers = {w["id"]: w["name"] for w in admin.get("/workers").json()}
    return {
        "agent": workers.get(done["worker_id"], done["worker_id"]),
        "latency_ms": (_seconds(done["started_at"]) - _seconds(done["created_at"])) * 1000,
        "cpu_s": cpu,
    }


# --- the run ------------------------------------------------------------------------------------


def start_hosts(
    url: str, key: str, agents: int, per_process: int, work: Path
) -> list[subprocess.Popen[bytes]]:
    hosts = []
    for first in range(0, agents, per_process):
        names = [f"idle-{n:03d}" for n in range(first, min(agents, first + per_process))]
        args = [sys.executable, "-m", "bench.idle_agents", "--host", url, str(work), *names]
        log = (work / f"host-{first // per_process}.log").open("ab")
        hosts.append(
            subprocess.Popen(args, env=child_env({KEY_VARIABLE: key}), stdout=log, stderr=subprocess.STDOUT)
        )
        log.close()
    return hosts


def stop_hosts(hosts: list[subprocess.Popen[bytes]]) -> None:
    for host in hosts:
        if host.poll() is None:
            host.send_signal(signal.SIGTERM)
    for host in hosts:
        try:
            host.wait(timeout=30)
        except subprocess.TimeoutExpired:
            host.kill()
            host.wait()


def run(agents: int, per_process: int, seconds: float, settle_s: float, work: Path) -> dict[str, Any]:
    coordinator = LocalCoordinator(work).start()
    assert coordinator.process.popen is not None
    pid = coordinator.process.popen.pid
    auth = {"Authorization": f"Bearer {coordinator.admin_key}"}
    admin = httpx.Client(base_url=coordinator.url + API_PREFIX, headers=auth, timeout=60)
    metrics = httpx.Client(base_url=coordinator.url, headers=auth, timeout=60)
    hosts: list[subprocess.Popen[bytes]] = []
    try:
        alone = measure_window(pid, [], metrics, BASELINE_S)
        rss_alone = rss_bytes(pid)
        key = admin.post("/keys", json={"role": "worker"}).json()["key"]
        hosts = start_hosts(coordinator.url, key, agents, per_process, work)

        def all_alive() -> bool:
            if any(host.poll() is not None for host in hosts):
                raise RuntimeError(f"an agent host exited early; see {work}/host-*.log")
            alive = sum(bool(w["alive"]) for w in admin.get("/workers").json())
            return alive == agents

        began = time.monotonic()
        wait_until(all_alive, 300, f"{agents} agents to register", interval_s=0.5)
        print(f"{agents} agents registered in {time.monotonic() - began:.1f} s", flush=True)
        time.sleep(settle_s)
        host_pids = [host.pid for host in hosts]
        window = measure_window(pid, host_pids, metrics, seconds)
        result = {
            "agents": agents,
            "hosts": len(hosts),
            "window": window,
            "alone": alone,
            "rss_alone": rss_alone,
            "rss": rss_bytes(pid),
            "hosts_rss": sum(rss_bytes(p) for p in host_pids),
            "job": one_job(admin, pid, window.coordinator_cpu_s / window.seconds),
        }
    finally:
        stop_hosts(hosts)
        coordinator.stop()
        admin.close()
        metrics.close()
    return result


def report(result: dict[str, Any]) -> None:
    window: Window = result["window"]
    alone: Window = result["alone"]
    agents = result["agents"]
    mib = 1024 * 1024
    agent_routes = {route: n for route, n in window.requests.items() if "/workers/{worker_id}" in route}
    per_agent = sum(agent_routes.values()) / window.seconds / agents
    job = result["job"]
    rows = [
        (
            "agents (processes x agents per process)",
            f"{agents} ({result['hosts']} x {agents // result['hosts']})",
        ),
        ("window (s)", f"{window.seconds:.1f}"),
        ("coordinator RSS before agents (MiB)", f"{result['rss_alone'] / mib:.1f}"),
        ("coordinator RSS with agents (MiB)", f"{result['rss'] / mib:.1f}"),
        (
            "coordinator CPU before agents (% of one core)",
            f"{alone.coordinator_cpu_s / alone.seconds * 100:.1f}",
        ),
        (
            "coordinator CPU with agents (% of one core)",
            f"{window.coordinator_cpu_s / window.seconds * 100:.1f}",
        ),
        ("agent requests per second, all agents", f"{sum(agent_routes.values()) / window.seconds:.2f}"),
        ("agent requests per second per agent", f"{per_agent:.3f}"),
        ("agent processes RSS per agent (MiB)", f"{result['hosts_rss'] / agents / mib:.2f}"),
        ("agent processes RSS per process (MiB)", f"{result['hosts_rss'] / result['hosts'] / mib:.1f}"),
        (
            "agent processes CPU per agent (% of one core)",
            f"{window.hosts_cpu_s / window.seconds / agents * 100:.3f}",
        ),
        ("one job: taken by", job["agent"]),
        ("one job: submit-to-start (ms)", f"{job['latency_ms']:.1f}"),
        (
            "one job: coordinator CPU in the second after submit, above idle (ms)",
            f"{job['cpu_s'] * 1000:.0f}",
        ),
    ]
    print("\n## Idle agents long-polling one coordinator (SQLite)\n")
    print("| measure | value |\n| --- | --- |")
    for name, value in rows:
        print(f"| {name} | {value} |")
    print("\n### Requests in the window, by route\n")
    print("| route | requests | per second | per agent per second |\n| --- | --- | --- | --- |")
    for route, count in sorted(window.requests.items(), key=lambda item: -item[1]):
        rate = count / window.seconds
        print(f"| `{route}` | {count} | {rate:.2f} | {rate / agents:.4f} |")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--host":
        host_main(sys.argv[2], sys.argv[4:], Path(sys.argv[3]))
        return
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--agents", type=int, default=200)
    parser.add_argument("--per-process", type=int, default=50, help="agents per child process")
    parser.add_argument("--seconds", type=float, default=60, help="the measuring window")
    parser.add_argument("--settle", type=float, default=25, help="seconds between registration and window")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="taskpost-idle-") as tmp:
        report(run(args.agents, args.per_process, args.seconds, args.settle, Path(tmp)))


if __name__ == "__main__":
    main()
