"""The CLI as a user runs it, and the API's answers to bad input over real HTTP."""

from __future__ import annotations

import json
import subprocess
import sys

import httpx
import pytest

from tests.e2e.conftest import ADMIN_KEY, Cluster, wait_until

pytestmark = [pytest.mark.e2e]


def taskpost(cluster: Cluster, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(cluster.coordinator.env)
    return subprocess.run(
        [sys.executable, "-m", "taskpost.cli", *args], env=env, capture_output=True, text=True, timeout=60
    )


def test_keys_created_and_revoked_from_the_cli_work_at_once(cluster: Cluster) -> None:
    created = taskpost(cluster, "keys", "create", "--role", "client", "--name", "from-cli")
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    client = cluster.client(key)
    assert client.get("/jobs").status_code == 200
    listed = json.loads(taskpost(cluster, "keys", "list", "--json").stdout)
    mine = next(k for k in listed if k["name"] == "from-cli")
    assert key.startswith(mine["prefix"]) and mine["last_used_at"] is not None
    revoked = taskpost(cluster, "keys", "revoke", mine["prefix"])
    assert revoked.returncode == 0, revoked.stderr
    assert client.get("/jobs").status_code == 401
    over_http = taskpost(
        cluster, "keys", "list", "--json", "--server-url", cluster.url, "--api-key", ADMIN_KEY
    )
    assert next(k for k in json.loads(over_http.stdout) if k["id"] == mine["id"])["revoked_at"] is not None


def test_info_shows_queues_and_agents(cluster: Cluster) -> None:
    agent = cluster.start_agent(name="info-agent", env={"TASKPOST_LABELS": "eu,fast"})
    cluster.wait_agents(1)
    job = cluster.submit(priority="high")
    cluster.wait_job(job["id"], {"completed"})
    stats = json.loads(taskpost(cluster, "info", "--json").stdout)
    assert {"type": "noop", "priority": "high", "state": "completed", "count": 1} in stats["counts"]
    [worker] = stats["workers"]
    assert worker["name"] == "info-agent" and worker["labels"] == ["eu", "fast"]
    text = taskpost(cluster, "info", "--server-url", cluster.url, "--api-key", ADMIN_KEY).stdout
    assert "info-agent" in text and "noop" in text
    log = agent.output()
    assert "Waiting for tasks" in log
    assert cluster.worker_key not in log, "the agent logged its API key unmasked"


def test_submit_wait_and_download_from_the_cli(cluster: Cluster, tmp_path: object) -> None:
    cluster.start_agent()
    key = cluster.http.post("/keys", json={"role": "client"}).json()["key"]
    out = f"{tmp_path}/out"
    result = taskpost(
        cluster, "submit", "noop", "--server-url", cluster.url, "--api-key", key,
        "--param", 'outputs={"a.txt": "hello"}', "--wait", "--output-dir", out,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["state"] == "completed"
    with open(f"{out}/a.txt") as handle:
        assert handle.read() == "hello"


def test_bad_input_over_http(cluster: Cluster) -> None:
    client_key = cluster.http.post("/keys", json={"role": "client"}).json()["key"]
    client = cluster.client(client_key)
    worker = cluster.client(cluster.worker_key)
    cases = [
        (httpx.post(cluster.url + "/api/v1/jobs", json={"type": "noop"}), 401, "not_authenticated"),
        (worker.post("/jobs", json={"type": "noop"}), 403, "forbidden"),
        (client.post("/jobs", json={"type": "nope"}), 422, "unknown_job_type"),
        (client.post("/jobs", json={"type": "noop", "priority": 9}), 422, "invalid_params"),
        (client.get("/jobs/unknown-id"), 404, "job_not_found"),
        (client.post("/uploads", content=b"x" * (1024 * 1024 + 1)), 413, "payload_too_large"),
    ]
    for response, status, code in cases:
        assert response.status_code == status, response.text
        assert response.json()["error"]["code"] == code
        assert response.json()["error"]["message"]
    first = client.post("/jobs", json={"type": "noop", "idempotency_key": "once"})
    second = client.post("/jobs", json={"type": "noop", "idempotency_key": "once"})
    assert (first.status_code, second.status_code) == (201, 200)
    assert first.json()["job"]["id"] == second.json()["job"]["id"]
    # Nothing already accepted was lost along the way.
    wait_until(lambda: client.get(f"/jobs/{first.json()['job']['id']}").status_code == 200, 5)
