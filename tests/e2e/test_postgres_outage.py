"""PostgreSQL stopped under load (``pg_ctl -m fast``) and started again: the coordinator answers
503 ``database_unavailable`` meanwhile, recovers by itself, and no job is lost or done twice."""

from __future__ import annotations

import signal
from collections import Counter
from pathlib import Path

import httpx
import pytest

from taskpost.launch import ChildProcess, child_env, free_port, wait_healthy, wait_until
from taskpost.protocol import API_PREFIX
from tests.e2e.conftest import ADMIN_KEY, COORDINATOR_ENV
from tests.support.postgres import PostgresCluster

pytestmark = pytest.mark.slow

JOBS = 1000


def test_the_coordinator_rides_out_a_postgres_restart_under_load(
    postgres_url: str, postgres_restartable: PostgresCluster, tmp_path: Path
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        "TASKPOST_ADMIN_KEY": ADMIN_KEY,
        "TASKPOST_DATABASE_URL": postgres_url,
        "TASKPOST_DATA_DIR": str(tmp_path / "data"),
        **COORDINATOR_ENV,
        "TASKPOST_LEASE_S": "30",
    }
    args = ["server", "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    coordinator = ChildProcess(args, child_env(env), tmp_path / "coordinator.log").start()
    agents: list[ChildProcess] = []
    http = httpx.Client(
        base_url=url + API_PREFIX, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=30
    )
    try:
        wait_healthy(url, coordinator)
        worker_key = http.post("/keys", json={"role": "worker"}).json()["key"]
        for index in range(2):
            agent_args = ["agent", "--server-url", url, "--name", f"agent-{index}", "--health-port", "0"]
            agent_args += ["--max-concurrent", "4", "--log-format", "json"]
            agent_env = child_env({"TASKPOST_API_KEY": worker_key})
            agents.append(ChildProcess(agent_args, agent_env, tmp_path / f"agent-{index}.log").start())
        wait_until(lambda: len(http.get("/workers").json()) == 2, 60, "2 agents registered")
        ids: list[str] = []
        for start in range(0, JOBS, 250):
            batch = [{"type": "noop", "params": {"i": i, "sleep_s": 0.01}} for i in range(start, start + 250)]
            response = http.post("/jobs/batch", json={"jobs": batch})
            assert response.status_code == 201, response.text
            ids += [entry["job"]["id"] for entry in response.json()["jobs"]]

        def completed() -> int:
            count: int = http.get("/stats").json()["totals"].get("completed", 0)
            return count

        wait_until(lambda: completed() >= 100, 120, "some jobs done")
        postgres_restartable.stop()
        try:
            down = http.get("/jobs", params={"limit": 1})
            assert down.status_code == 503, down.text
            assert down.json()["error"]["code"] == "database_unavailable"
            health = httpx.get(f"{url}/health", timeout=30)
            assert health.status_code == 503
            assert health.json()["database"] == "unavailable"
        finally:
            postgres_restartable.start()

        wait_until(lambda: _healthy(url), 60, "the same coordinator process to recover")
        assert coordinator.running(), "the coordinator died instead of waiting for its database"
        wait_until(lambda: completed() == JOBS, 300, "every job completed after the outage")
        jobs = {}
        cursor = None
        while True:
            page = http.get("/jobs", params={"limit": 1000, **({"cursor": cursor} if cursor else {})}).json()
            jobs.update({job["id"]: job for job in page["jobs"]})
            cursor = page["next_cursor"]
            if cursor is None:
                break
    finally:
        for agent in agents:
            agent.stop(signal.SIGINT)
        coordinator.stop(signal.SIGTERM)
        http.close()

    assert set(jobs) == set(ids), "jobs were lost or invented"
    assert Counter(job["state"] for job in jobs.values()) == {"completed": JOBS}
    assert all(job["result"]["params"]["i"] == job["params"]["i"] for job in jobs.values())


def _healthy(url: str) -> bool:
    return httpx.get(f"{url}/health", timeout=30).status_code == 200
