"""Real processes: a coordinator started through the CLI (uvicorn on 127.0.0.1) on a SQLite file,
and agents started through the CLI. Every wait polls with a deadline."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from taskpost.launch import ChildProcess, child_env, free_port, wait_healthy, wait_until
from taskpost.protocol import API_PREFIX

ADMIN_KEY = "e2e-admin-key-at-least-32-characters"
__all__ = ["ADMIN_KEY", "Cluster", "wait_until"]

# Short cadences so that lease expiry and heartbeats happen within a test's patience.
COORDINATOR_ENV = {
    "TASKPOST_LEASE_S": "3",
    "TASKPOST_HEARTBEAT_INTERVAL_S": "0.5",
    "TASKPOST_LONG_POLL_S": "2",
    "TASKPOST_REAPER_INTERVAL_S": "0.2",
    "TASKPOST_TIMEOUT_GRACE_S": "1",
    "TASKPOST_MAX_UPLOAD_BYTES": str(1024 * 1024),
}


class Cluster:
    """A coordinator and its agents, plus an admin HTTP client."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.coordinator = ChildProcess(
            ["server", "--host", "127.0.0.1", "--port", str(self.port), "--log-level", "warning"],
            child_env(
                {
                    "TASKPOST_ADMIN_KEY": ADMIN_KEY,
                    "TASKPOST_DATA_DIR": str(tmp_path / "data"),
                    **COORDINATOR_ENV,
                }
            ),
            tmp_path / "coordinator.log",
        )
        self.agents: list[ChildProcess] = []
        self.http = httpx.Client(
            base_url=self.url + API_PREFIX, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=30
        )
        self.worker_key = ""
        self.closing: list[httpx.Client] = []
        """Clients a test opened, closed with the cluster."""

    def start_coordinator(self) -> None:
        self.coordinator.start()
        wait_healthy(self.url, self.coordinator)
        if not self.worker_key:
            self.worker_key = self.http.post("/keys", json={"role": "worker"}).json()["key"]

    def start_agent(
        self,
        *extra: str,
        name: str | None = None,
        env: dict[str, str] | None = None,
        allow_private_urls: bool = True,
    ) -> ChildProcess:
        """An agent of this cluster; it may fetch from 127.0.0.1 unless ``allow_private_urls=False``."""
        index = len(self.agents)
        name = name or f"agent-{index}"
        args = ["agent", "--server-url", self.url, "--api-key", self.worker_key, "--name", name]
        args += ["--health-port", "0", "--log-format", "json", "--poll-interval", "0.2", *extra]
        if allow_private_urls:
            args.append("--allow-private-urls")
        agent = ChildProcess(args, child_env(env or {}), self.tmp_path / f"{name}.log").start()
        self.agents.append(agent)
        return agent

    def wait_agents(self, count: int, timeout_s: float = 30) -> list[dict[str, Any]]:
        def registered() -> list[dict[str, Any]] | None:
            for agent in self.agents:
                if (
                    not agent.running()
                    and agent.popen is not None
                    and agent.popen.returncode not in (0, None)
                ):
                    raise AssertionError("agent exited:\n" + agent.output())
            workers: list[dict[str, Any]] = self.http.get("/workers").json()
            return workers if len(workers) >= count else None

        return wait_until(registered, timeout_s, f"{count} registered agents")

    def client(self, key: str) -> httpx.Client:
        """An HTTP client of the API with ``key``, closed with the cluster."""
        client = httpx.Client(base_url=self.url + API_PREFIX, headers={"Authorization": f"Bearer {key}"})
        self.closing.append(client)
        return client

    def submit(self, **spec: Any) -> dict[str, Any]:
        spec.setdefault("type", "noop")
        response = self.http.post("/jobs", json=spec)
        assert response.status_code in (200, 201), response.text
        job: dict[str, Any] = response.json()["job"]
        return job

    def job(self, job_id: str) -> dict[str, Any]:
        job: dict[str, Any] = self.http.get(f"/jobs/{job_id}").json()
        return job

    def wait_job(self, job_id: str, states: set[str], timeout_s: float = 30) -> dict[str, Any]:
        return wait_until(
            lambda: (job := self.job(job_id))["state"] in states and job,
            timeout_s,
            f"job {job_id} to reach {states}",
        )

    def events(self, job_id: str) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = self.http.get(f"/jobs/{job_id}/events").json()
        return events

    def stop(self) -> None:
        for agent in self.agents:
            if agent.running():
                agent.signal(signal.SIGINT)
        for agent in self.agents:
            agent.stop(signal.SIGINT)
        self.coordinator.stop(signal.SIGTERM)
        for client in [self.http, *self.closing]:
            client.close()


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    cluster = Cluster(tmp_path)
    cluster.start_coordinator()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test under tests/e2e is an ``e2e`` test, so that ``-m "not e2e"`` is the quick run."""
    here = Path(__file__).parent
    for item in items:
        if item.path.is_relative_to(here):
            item.add_marker(pytest.mark.e2e)
