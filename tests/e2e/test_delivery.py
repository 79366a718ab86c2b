"""No task lost, none completed twice: many jobs, killed agents, a killed coordinator."""

from __future__ import annotations

import signal
from collections import Counter

import pytest

from tests.e2e.conftest import Cluster, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def _all_ended(cluster: Cluster, ids: list[str]) -> dict[str, dict[str, object]]:
    jobs: dict[str, dict[str, object]] = {}
    cursor = None
    while True:
        params = {"limit": 1000, **({"cursor": cursor} if cursor else {})}
        page = cluster.http.get("/jobs", params=params).json()
        jobs.update({job["id"]: job for job in page["jobs"]})
        cursor = page["next_cursor"]
        if cursor is None:
            return {job_id: jobs[job_id] for job_id in ids}


def test_500_jobs_over_3_agents_complete_exactly_once(cluster: Cluster) -> None:
    for index in range(3):
        cluster.start_agent("--max-concurrent", "4", name=f"bulk-{index}")
    workers = cluster.wait_agents(3)
    priorities = ["high", "default", "low"]
    batch = [{"type": "noop", "params": {"i": i}, "priority": priorities[i % 3]} for i in range(500)]
    ids = []
    for start in range(0, 500, 100):
        response = cluster.http.post("/jobs/batch", json={"jobs": batch[start : start + 100]})
        assert response.status_code == 201
        ids += [entry["job"]["id"] for entry in response.json()["jobs"]]

    def done() -> bool:
        return cluster.http.get("/stats").json()["totals"].get("completed", 0) == 500

    wait_until(done, 120, "500 completed jobs")
    jobs = _all_ended(cluster, ids)
    assert {job["state"] for job in jobs.values()} == {"completed"}
    assert {job["attempts"] for job in jobs.values()} == {1}, "a job ran more than once"
    assert all(job["result"]["params"] == {"i": job["params"]["i"]} for job in jobs.values())  # type: ignore[index]
    per_agent = Counter(job["worker_id"] for job in jobs.values())
    assert set(per_agent) == {w["id"] for w in workers}, f"work was not spread: {per_agent}"
    sample = ids[::50]
    assert all(cluster.events(job_id) == [] for job_id in sample)


def test_an_agent_killed_mid_task_has_its_task_finished_by_another(cluster: Cluster) -> None:
    doomed = cluster.start_agent(name="doomed")
    cluster.wait_agents(1)
    job = cluster.submit(params={"sleep_s": 2})
    wait_until(lambda: cluster.job(job["id"])["state"] == "processing", 30, "the task to start")
    doomed.kill()  # SIGKILL: no goodbye, no release
    cluster.start_agent(name="rescuer")
    final = cluster.wait_job(job["id"], {"completed"}, timeout_s=60)
    assert final["attempts"] == 2
    rescuer_id = next(w["id"] for w in cluster.http.get("/workers").json() if w["name"] == "rescuer")
    assert final["worker_id"] == rescuer_id
    assert [e["kind"] for e in cluster.events(job["id"])] == ["lease_expired"]


def test_a_frozen_agent_cannot_complete_a_task_given_to_another(cluster: Cluster) -> None:
    frozen = cluster.start_agent(name="frozen")
    cluster.wait_agents(1)
    job = cluster.submit(params={"sleep_s": 1.5})
    wait_until(lambda: cluster.job(job["id"])["state"] == "processing", 30, "the task to start")
    frozen.signal(signal.SIGSTOP)  # alive but silent: its lease runs out
    try:
        cluster.start_agent(name="other")
        done = cluster.wait_job(job["id"], {"completed"}, timeout_s=60)
    finally:
        frozen.signal(signal.SIGCONT)

    # The frozen agent wakes up with a stale lease. Either its heartbeat hears so first and it
    # drops its copy, or it sends the completion and the coordinator refuses and records it.
    def frozen_copy_settled() -> bool:
        refused = any(e["kind"] == "stale_completion_refused" for e in cluster.events(job["id"]))
        return refused or "task_dropped" in frozen.output() or "completion_stale" in frozen.output()

    wait_until(frozen_copy_settled, 30, "the frozen agent's copy to be dropped or refused")
    after = cluster.job(job["id"])
    assert after["state"] == "completed" and after["worker_id"] == done["worker_id"]
    assert after["ended_at"] == done["ended_at"]


def test_a_coordinator_killed_mid_run_loses_nothing(cluster: Cluster) -> None:
    for index in range(2):
        cluster.start_agent("--max-concurrent", "2", name=f"steady-{index}")
    cluster.wait_agents(2)
    ids = [cluster.submit(params={"i": i, "sleep_s": 0.05})["id"] for i in range(60)]
    wait_until(
        lambda: cluster.http.get("/stats").json()["totals"].get("completed", 0) >= 10, 60, "some progress"
    )
    cluster.coordinator.kill()
    cluster.start_coordinator()

    def done() -> bool:
        return cluster.http.get("/stats").json()["totals"].get("completed", 0) == 60

    wait_until(done, 120, "every job to complete after the restart")
    jobs = _all_ended(cluster, ids)
    assert {job["state"] for job in jobs.values()} == {"completed"}
    assert all(job["result"]["params"]["i"] == job["params"]["i"] for job in jobs.values())  # type: ignore[index]
