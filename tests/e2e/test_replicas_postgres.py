"""Two coordinator replicas on one PostgreSQL, four agents spread over them, 5,000 jobs, and one
replica SIGKILLed mid-run and started again: every job completes exactly once, none is lost."""

from __future__ import annotations

import signal
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from taskpost.launch import ChildProcess, child_env, free_port, wait_healthy, wait_until
from taskpost.protocol import API_PREFIX
from tests.e2e.conftest import ADMIN_KEY, COORDINATOR_ENV

pytestmark = pytest.mark.slow

JOBS = 5000
BATCH = 500


class Replica:
    def __init__(self, index: int, database_url: str, data_dir: Path, logs: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {
            "TASKPOST_ADMIN_KEY": ADMIN_KEY,
            "TASKPOST_DATABASE_URL": database_url,
            # One blob directory for both, as a shared volume would be.
            "TASKPOST_DATA_DIR": str(data_dir),
            **COORDINATOR_ENV,
            # Longer than a restart takes: tasks of agents that live on are not given away.
            "TASKPOST_LEASE_S": "20",
        }
        args = ["server", "--host", "127.0.0.1", "--port", str(self.port), "--log-level", "warning"]
        self.process = ChildProcess(args, child_env(env), logs / f"replica-{index}.log")

    def start(self) -> Replica:
        self.process.start()
        wait_healthy(self.url, self.process)
        return self


@pytest.fixture
def replicas(postgres_url: str, tmp_path: Path) -> Iterator[list[Replica]]:
    started = [Replica(index, postgres_url, tmp_path / "blobs", tmp_path) for index in range(2)]
    try:
        for replica in started:
            replica.start()
        yield started
    finally:
        for replica in started:
            replica.process.stop(signal.SIGTERM)


def _admin(url: str) -> httpx.Client:
    return httpx.Client(
        base_url=url + API_PREFIX, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=30
    )


def _all_jobs(http: httpx.Client) -> dict[str, dict[str, Any]]:
    jobs: dict[str, dict[str, Any]] = {}
    cursor = None
    while True:
        page = http.get("/jobs", params={"limit": 1000, **({"cursor": cursor} if cursor else {})}).json()
        jobs.update({job["id"]: job for job in page["jobs"]})
        cursor = page["next_cursor"]
        if cursor is None:
            return jobs


def test_a_replica_killed_mid_run_loses_nothing_and_completes_nothing_twice(
    replicas: list[Replica], tmp_path: Path
) -> None:
    first, second = replicas
    with _admin(first.url) as admin_a, _admin(second.url) as admin_b:
        worker_key = admin_a.post("/keys", json={"role": "worker"}).json()["key"]
        agents = []
        for index in range(4):
            replica = replicas[index % 2]
            args = ["agent", "--server-url", replica.url, "--name", f"agent-{index}", "--health-port", "0"]
            args += ["--log-format", "json", "--max-concurrent", "8"]
            env = child_env({"TASKPOST_API_KEY": worker_key})
            agents.append(ChildProcess(args, env, tmp_path / f"agent-{index}.log").start())
        try:
            wait_until(lambda: len(admin_b.get("/workers").json()) == 4, 60, "4 agents registered")
            ids: list[str] = []
            for start in range(0, JOBS, BATCH):
                admin = (admin_a, admin_b)[(start // BATCH) % 2]
                batch = [{"type": "noop", "params": {"i": i}} for i in range(start, start + BATCH)]
                response = admin.post("/jobs/batch", json={"jobs": batch})
                assert response.status_code == 201, response.text
                ids += [entry["job"]["id"] for entry in response.json()["jobs"]]

            def completed(http: httpx.Client) -> int:
                count: int = http.get("/stats").json()["totals"].get("completed", 0)
                return count

            wait_until(lambda: completed(admin_b) >= JOBS // 5, 120, "a fifth of the jobs done")
            first.process.kill()  # SIGKILL: no shutdown, held polls and open requests cut
            assert completed(admin_b) < JOBS, "the kill came too late to test anything"
            first.start()

            wait_until(lambda: completed(admin_a) == JOBS, 300, "every job completed")
            jobs = _all_jobs(admin_b)
        finally:
            for agent in agents:
                agent.stop(signal.SIGINT)

        assert set(jobs) == set(ids), "jobs were lost or invented"
        assert Counter(job["state"] for job in jobs.values()) == {"completed": JOBS}
        assert all(job["result"]["params"] == {"i": job["params"]["i"]} for job in jobs.values())
        again = [job for job in jobs.values() if job["attempts"] != 1]
        for job in again:
            # A second attempt only after the first one's lease was given up on, never beside it.
            kinds = [event["kind"] for event in admin_a.get(f"/jobs/{job['id']}/events").json()]
            assert kinds and kinds[0] in {"lease_expired", "released"}, (job["id"], kinds)
        used = Counter(job["worker_id"] for job in jobs.values())
        assert len(used) == 4, f"every agent, on either replica, took work: {used}"
