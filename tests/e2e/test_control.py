"""Cancel, priorities, retries to the dead-letter state, graceful and forced agent shutdown."""

from __future__ import annotations

import signal

import pytest

from tests.e2e.conftest import Cluster, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_cancel_a_queued_and_a_running_job(cluster: Cluster) -> None:
    cluster.start_agent()
    cluster.wait_agents(1)
    running = cluster.submit(params={"sleep_s": 60})
    wait_until(lambda: cluster.job(running["id"])["state"] == "processing", 30, "the task to start")
    queued = cluster.submit()
    assert cluster.http.post(f"/jobs/{queued['id']}/cancel").json()["state"] == "cancelled"
    assert cluster.http.post(f"/jobs/{running['id']}/cancel").json()["cancel_requested"] is True
    stopped = cluster.wait_job(running["id"], {"cancelled"}, timeout_s=20)
    assert stopped["ended_at"] is not None
    follow_up = cluster.submit()
    assert cluster.wait_job(follow_up["id"], {"completed"})["state"] == "completed"


def test_priority_order(cluster: Cluster) -> None:
    low = cluster.submit(priority="low")
    default = cluster.submit()
    high = cluster.submit(priority="high")
    cluster.start_agent("--max-concurrent", "1")
    ends = {job["id"]: cluster.wait_job(job["id"], {"completed"}) for job in (low, default, high)}
    order = sorted(ends, key=lambda job_id: ends[job_id]["started_at"])
    assert order == [high["id"], default["id"], low["id"]]


def test_retries_with_backoff_then_dead_then_requeue(cluster: Cluster) -> None:
    cluster.start_agent()
    job = cluster.submit(
        params={"fail": "broken on purpose"},
        max_attempts=3,
        retry={"base_s": 0.3, "factor": 2, "jitter": False},
    )
    dead = cluster.wait_job(job["id"], {"dead"}, timeout_s=30)
    assert dead["attempts"] == 3
    assert "broken on purpose" in dead["error"]["message"]
    kinds = [e["kind"] for e in cluster.events(job["id"])]
    assert kinds == ["attempt_failed"] * 3
    requeued = cluster.http.post(f"/jobs/{job['id']}/requeue").json()
    assert requeued["state"] == "queued" and requeued["attempts"] == 0
    again = cluster.wait_job(job["id"], {"dead"}, timeout_s=30)
    assert again["attempts"] == 3


def test_non_retryable_failure_is_dead_after_one_attempt(cluster: Cluster) -> None:
    cluster.start_agent()
    job = cluster.submit(params={"fail": "bad input", "fail_retryable": False}, max_attempts=5)
    dead = cluster.wait_job(job["id"], {"dead"})
    assert dead["attempts"] == 1 and dead["error"]["retryable"] is False


def test_sigterm_finishes_the_running_task_then_deregisters(cluster: Cluster) -> None:
    agent = cluster.start_agent("--shutdown-grace", "30")
    cluster.wait_agents(1)
    job = cluster.submit(params={"sleep_s": 1.5})
    wait_until(lambda: cluster.job(job["id"])["state"] == "processing", 30, "the task to start")
    agent.signal(signal.SIGTERM)
    assert agent.wait_exit(30) == 0
    finished = cluster.job(job["id"])
    assert finished["state"] == "completed" and finished["attempts"] == 1
    assert cluster.http.get("/workers").json() == []


def test_a_second_signal_releases_the_task_to_another_agent(cluster: Cluster) -> None:
    agent = cluster.start_agent("--shutdown-grace", "60", name="leaving")
    cluster.wait_agents(1)
    job = cluster.submit(params={"sleep_s": 120})
    wait_until(lambda: cluster.job(job["id"])["state"] == "processing", 30, "the task to start")
    agent.signal(signal.SIGINT)
    # Two signals sent at once merge into one in the kernel: wait for the first to be handled.
    wait_until(lambda: "stop_requested" in agent.output(), 10, "the agent to start its graceful stop")
    agent.signal(signal.SIGINT)
    agent.wait_exit(30)
    released = cluster.wait_job(job["id"], {"queued"}, timeout_s=10)
    assert released["attempts"] == 0
    assert [e["kind"] for e in cluster.events(job["id"])] == ["released"]
