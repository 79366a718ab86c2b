"""docker-compose.yml's key bootstrap, run as written without Docker: its ``keys`` command against
a real coordinator, then an agent with the compose agent's environment, which runs a job."""

from __future__ import annotations

import signal
import stat
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from taskpost.launch import ChildProcess, LocalCoordinator, free_port, wait_until
from taskpost.protocol import API_PREFIX
from tests.deploy.truth import REPO_ROOT

pytestmark = pytest.mark.e2e


def _services() -> dict[str, dict[str, Any]]:
    services = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())["services"]
    assert isinstance(services, dict)
    return services


def test_keys_service_then_agent_runs_a_job(tmp_path: Path) -> None:
    services = _services()
    keys, agent_service = services["keys"], services["agent-cpu"]
    coordinator = LocalCoordinator(tmp_path).start()
    try:
        keys_dir = tmp_path / "keys"
        keys_dir.mkdir(mode=0o700)
        script = " ".join(keys["command"]).replace("/keys/", f"{keys_dir}/")
        env = {
            **coordinator.env,
            "TASKPOST_SERVER_URL": coordinator.url,
            "TASKPOST_API_KEY": coordinator.admin_key,
        }
        subprocess.run(["sh", "-c", script], env=env, check=True, timeout=60, capture_output=True)
        key_file = keys_dir / "worker.key"
        first = key_file.read_text()
        assert first.startswith("tp_") and stat.S_IMODE(key_file.stat().st_mode) == 0o600
        subprocess.run(["sh", "-c", script], env=env, check=True, timeout=60, capture_output=True)
        assert key_file.read_text() == first, "a second `up` keeps the key it made"

        agent_env = {k: v for k, v in coordinator.env.items() if k != "TASKPOST_ADMIN_KEY"}
        agent_env.update({str(k): str(v) for k, v in agent_service["environment"].items()})
        health_port = free_port()
        agent_env.update(
            TASKPOST_SERVER_URL=coordinator.url,
            TASKPOST_API_KEY_FILE=str(key_file),
            TASKPOST_HEALTH_PORT=str(health_port),
            TASKPOST_WORK_DIR=str(tmp_path / "work"),
            TASKPOST_TASK_TYPES="noop",  # not every installed handler: a faster start
        )
        agent = ChildProcess(["agent", "--poll-interval", "0.2"], agent_env, tmp_path / "agent.log").start()
        try:
            with httpx.Client(
                base_url=coordinator.url + API_PREFIX,
                headers={"Authorization": f"Bearer {coordinator.admin_key}"},
                timeout=30,
            ) as admin:
                job = admin.post("/jobs", json={"type": "noop"}).json()["job"]
                done = wait_until(
                    lambda: (
                        (found := admin.get(f"/jobs/{job['id']}").json())["state"] == "completed" and found
                    ),
                    60,
                    "the noop job to complete",
                )
            assert done["state"] == "completed"
            health = httpx.get(f"http://127.0.0.1:{health_port}/health", timeout=5).json()
            assert health["status"] == "ok" and health["worker_type"] == "cpu"
        finally:
            agent.stop(signal.SIGTERM)
    finally:
        coordinator.stop()
