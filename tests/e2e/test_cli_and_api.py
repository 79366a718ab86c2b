"""The CLI as a user runs it, and the API's answers to bad input over real HTTP."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import ADMIN_KEY, Cluster, wait_until

pytestmark = [pytest.mark.e2e]


def taskpost(cluster: Cluster, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**cluster.coordinator.env, "TASKPOST_SERVER_URL": cluster.url, "TASKPOST_API_KEY": ADMIN_KEY}
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
    job = json.loads(result.stdout)
    assert job["state"] == "completed"
    assert f"job {job['id']} completed\n" in result.stderr and f"saved 1 output in {out}" in result.stderr
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


@pytest.fixture
def webhook_cluster(tmp_path: Path) -> Iterator[Cluster]:
    """A cluster whose coordinator may call webhooks on 127.0.0.1."""
    cluster = Cluster(tmp_path)
    cluster.coordinator.env["TASKPOST_ALLOW_PRIVATE_WEBHOOKS"] = "true"
    cluster.start_coordinator()
    try:
        yield cluster
    finally:
        cluster.stop()


def test_submit_later_cached_and_with_a_webhook_from_the_cli(webhook_cluster: Cluster) -> None:
    cluster = webhook_cluster
    cluster.start_agent()
    key = cluster.http.post("/keys", json={"role": "client"}).json()["key"]

    def submit(*args: str) -> subprocess.CompletedProcess[str]:
        return taskpost(cluster, "submit", "noop", "--api-key", key, *args)

    def submitted(*args: str) -> dict[str, Any]:
        done = submit(*args)
        assert done.returncode == 0, done.stderr
        job: dict[str, Any] = json.loads(done.stdout)
        return job

    later = submitted("--delay", "30m")
    assert later["state"] == "scheduled"
    waits = datetime.fromisoformat(later["available_at"]) - datetime.fromisoformat(later["created_at"])
    assert abs(waits.total_seconds() - 1800) < 5
    at = submitted("--run-at", "2099-01-02T03:04:05Z")
    assert at["state"] == "scheduled" and at["available_at"].startswith("2099-01-02T03:04:05")
    bad = submit("--run-at", "tomorrow")
    assert bad.returncode == 2 and "ISO 8601 time with a zone" in bad.stderr
    hooked = submitted("--webhook-url", "http://127.0.0.1:9/hook")
    assert hooked["webhook_url"] == "http://127.0.0.1:9/hook"

    first = submit("-p", "n=7", "--cache", "--wait")
    second = submit("-p", "n=7", "--cache", "--wait")
    assert first.returncode == 0 and second.returncode == 0, second.stderr
    original = json.loads(first.stdout)["id"]
    assert json.loads(second.stdout)["cached_from"] == original
    assert f"completed from the cache (the result of job {original})" in second.stderr


def test_types_from_the_cli(cluster: Cluster) -> None:
    cluster.start_agent("--task-type", "noop")
    cluster.wait_agents(1)
    table = taskpost(cluster, "types")
    assert table.returncode == 0, table.stderr
    assert table.stdout.splitlines()[0].split()[:4] == ["type", "version", "agents", "online"]
    [noop] = [line for line in table.stdout.splitlines() if line.startswith("noop ")]
    assert " yes " in noop
    listed = json.loads(taskpost(cluster, "types", "--json").stdout)
    assert next(t for t in listed["types"] if t["name"] == "noop")["online"] is True
