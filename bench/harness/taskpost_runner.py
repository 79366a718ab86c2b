"""Taskpost on SQLite or PostgreSQL: a fresh coordinator per run, agents started per drain round."""

from __future__ import annotations

import signal
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from bench.harness import processes
from bench.harness.workloads import (
    BATCH_SIZE,
    ENQUEUE,
    BenchSettings,
    Sample,
    drain_sample,
    latency_samples,
)
from taskpost.launch import ChildProcess, LocalCoordinator, wait_until
from taskpost.protocol import API_PREFIX

DRAIN_TIMEOUT_S = 600
IDLE_POLL_S = 0.1
"""How often the drain round asks whether anything is queued or running: two cheap list calls,
never ``/stats``, so the coordinator under test is not slowed by the asking."""


def _seconds(stamp: str) -> float:
    return datetime.fromisoformat(stamp).timestamp()


class TaskpostUnderTest:
    """One coordinator (its database fresh) and the agents started for it."""

    def __init__(self, coordinator: LocalCoordinator, settings: BenchSettings) -> None:
        self.coordinator = coordinator
        self.settings = settings
        auth = {"Authorization": f"Bearer {coordinator.admin_key}"}
        self.http = httpx.Client(base_url=coordinator.url + API_PREFIX, headers=auth, timeout=60)
        response = self.http.post("/keys", json={"role": "worker"})
        response.raise_for_status()
        self.worker_key: str = response.json()["key"]
        self.agent_logs = 0

    def close(self) -> None:
        self.http.close()

    def start_agents(self, count: int) -> list[ChildProcess]:
        agents = []
        for _ in range(count):
            self.agent_logs += 1
            args = ["--max-concurrent", str(self.settings.agent_concurrency), "--task-type", "noop"]
            args += ["--health-port", "0", "--log-level", "warning", "--name", f"bench-{self.agent_logs}"]
            agent = self.coordinator.start_agent(
                self.worker_key, *args, log_name=f"agent-{self.agent_logs}.log"
            )
            assert agent.popen is not None
            processes.remember(agent.popen.pid)
            agents.append(agent)
        return agents

    def fill(self, jobs: int) -> tuple[set[str], float]:
        """Submit ``jobs`` no-op jobs in batches; their ids and the seconds it took."""
        ids: set[str] = set()
        started = time.perf_counter()
        for first in range(0, jobs, BATCH_SIZE):
            batch = [
                {"type": "noop", "params": {"i": i}} for i in range(first, min(jobs, first + BATCH_SIZE))
            ]
            response = self.http.post("/jobs/batch", json={"jobs": batch})
            response.raise_for_status()
            ids.update(item["job"]["id"] for item in response.json()["jobs"])
        return ids, time.perf_counter() - started

    def idle(self) -> bool:
        """Nothing queued and nothing running."""
        for state in ("queued", "processing"):
            response = self.http.get("/jobs", params={"state": state, "limit": 1})
            response.raise_for_status()
            if response.json()["jobs"]:
                return False
        return True

    def completed_times(self, ids: set[str]) -> tuple[float, float]:
        """First ``started_at`` and last ``ended_at`` of the completed jobs ``ids``, newest pages first."""
        first, last, seen = float("inf"), 0.0, 0
        cursor: str | None = None
        while seen < len(ids):
            params: dict[str, Any] = {"state": "completed", "limit": 1000}
            if cursor:
                params["cursor"] = cursor
            page = self.http.get("/jobs", params=params).json()
            for job in page["jobs"]:
                if job["id"] in ids:
                    seen += 1
                    first = min(first, _seconds(job["started_at"]))
                    last = max(last, _seconds(job["ended_at"]))
            cursor = page.get("next_cursor")
            if not cursor:
                break
        if seen != len(ids):
            raise RuntimeError(f"Taskpost completed {seen} of {len(ids)} jobs")
        return first, last

    def drain(self, ids: set[str], agents: int) -> tuple[float, float]:
        started = self.start_agents(agents)
        try:
            wait_until(self.idle, DRAIN_TIMEOUT_S, "Taskpost to drain its queue", interval_s=IDLE_POLL_S)
        finally:
            for agent in started:
                agent.stop(signal.SIGTERM)
        return self.completed_times(ids)

    def _wait_completed(self, job_id: str) -> dict[str, Any]:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            job: dict[str, Any] = self.http.get(f"/jobs/{job_id}", params={"wait_s": 10}).json()
            if job["state"] == "completed":
                return job
            if job["state"] in ("dead", "cancelled", "failed"):
                raise RuntimeError(f"latency job {job_id} ended {job['state']}")
        raise TimeoutError(f"latency job {job_id} did not complete")

    def latencies(self, samples: int) -> list[float]:
        """``started_at - created_at`` (both stamped by the coordinator) of jobs sent one at a time
        to one idle, long-polling agent; a first job, not counted, proves the agent is up."""
        agents = self.start_agents(1)
        try:
            values = []
            for index in range(samples + 1):
                response = self.http.post("/jobs", json={"type": "noop", "params": {"i": index}})
                response.raise_for_status()
                job = self._wait_completed(response.json()["job"]["id"])
                if index:
                    values.append(_seconds(job["started_at"]) - _seconds(job["created_at"]))
            return values
        finally:
            for agent in agents:
                agent.stop(signal.SIGTERM)


@contextmanager
def taskpost_under_test(settings: BenchSettings, database_url: str | None) -> Iterator[TaskpostUnderTest]:
    with tempfile.TemporaryDirectory(prefix="harness-taskpost-") as folder, ExitStack() as stack:
        extra = {"TASKPOST_DATABASE_URL": database_url} if database_url else {}
        coordinator = LocalCoordinator(Path(folder), settings=extra)
        stack.callback(coordinator.stop)
        coordinator.start()
        assert coordinator.process.popen is not None
        processes.remember(coordinator.process.popen.pid)
        system = TaskpostUnderTest(coordinator, settings)
        stack.callback(system.close)
        yield system


def run_once(system_name: str, settings: BenchSettings, run: int, database_url: str | None) -> list[Sample]:
    """Enqueue, drain at each agent count, and idle latency, on one fresh coordinator."""
    samples: list[Sample] = []
    with taskpost_under_test(settings, database_url) as system:
        for index, agents in enumerate(settings.worker_counts):
            ids, seconds = system.fill(settings.jobs)
            if index == 0:
                samples.append(Sample(system_name, ENQUEUE, run, settings.jobs / seconds, "jobs/s"))
            first, last = system.drain(ids, agents)
            samples.append(drain_sample(system_name, run, agents, len(ids), first, last))
        samples += latency_samples(system_name, run, system.latencies(settings.latency_samples))
    return samples
