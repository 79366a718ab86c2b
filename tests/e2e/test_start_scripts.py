"""scripts/start-http-worker.sh as users run it: a ``.env`` copied from the example, a real
coordinator, and the agent the script starts."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from taskpost.launch import child_env, free_port
from tests.e2e.conftest import Cluster, wait_until

pytestmark = pytest.mark.skipif(shutil.which("sh") is None, reason="needs a POSIX shell")

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "start-http-worker.sh"
EXAMPLE = ROOT / "configs" / "http-worker.env.example"


def write_env(folder: Path, server_url: str, api_key: str) -> None:
    """The example ``.env`` with its two required values filled in, as its comment asks."""
    values = {
        "TASKPOST_SERVER_URL": server_url,
        "TASKPOST_API_KEY": api_key,
        "TASKPOST_HEALTH_PORT": "0",
        "TASKPOST_POLL_INTERVAL": "0.2",
        "TASKPOST_WORK_DIR": str(folder / "work"),
        "TASKPOST_TASK_TYPES": "noop",  # no media models to load
    }
    lines = []
    for line in EXAMPLE.read_text().splitlines():
        name = line.partition("=")[0]
        lines.append(f"{name}={values[name]}" if name in values else line)
    (folder / ".env").write_text("\n".join(lines) + "\n")


def start_script(folder: Path) -> subprocess.Popen[bytes]:
    with (folder / "script.log").open("ab") as log:
        return subprocess.Popen(
            ["sh", str(SCRIPT)], cwd=folder, env=child_env({}), stdout=log, stderr=subprocess.STDOUT
        )


def output(folder: Path) -> str:
    return (folder / "script.log").read_text(errors="replace")


@pytest.fixture
def worker_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "worker"
    folder.mkdir()
    return folder


def test_script_with_env_file_processes_a_job(cluster: Cluster, worker_dir: Path) -> None:
    write_env(worker_dir, cluster.url, cluster.worker_key)
    process = start_script(worker_dir)
    try:
        job = cluster.submit(params={"sleep_s": 0})
        assert cluster.wait_job(job["id"], {"completed"})["state"] == "completed"
        assert "accepts this key for an agent" in output(worker_dir)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)


def test_script_refuses_to_start_at_once(cluster: Cluster, tmp_path: Path) -> None:
    """Unreachable, wrong key, wrong role: one line each and exit 2, without starting the agent."""
    client_key = cluster.http.post("/keys", json={"role": "client"}).json()["key"]
    cases = {
        "unreachable": (
            f"http://127.0.0.1:{free_port()}",
            cluster.worker_key,
            "cannot reach the coordinator",
        ),
        "wrong_key": (cluster.url, "tp_not-a-key-of-this-coordinator-0123456789", "refused the API key"),
        "wrong_role": (cluster.url, client_key, "valid but not for an agent"),
    }
    for case, (url, api_key, message) in cases.items():
        folder = tmp_path / case
        folder.mkdir()
        write_env(folder, url, api_key)
        started = time.monotonic()
        process = start_script(folder)
        assert process.wait(timeout=30) == 2, case
        assert time.monotonic() - started < 15, case
        assert message in output(folder), output(folder)
    assert cluster.http.get("/workers").json() == []


def test_sigterm_lets_the_running_task_finish(cluster: Cluster, worker_dir: Path) -> None:
    write_env(worker_dir, cluster.url, cluster.worker_key)
    process = start_script(worker_dir)
    try:
        cluster.wait_agents(1)
        job = cluster.submit(params={"sleep_s": 2})
        wait_until(lambda: cluster.job(job["id"])["state"] == "processing", 30, "the task to start")
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
    # The agent exited only after reporting the task: completed on its first attempt, not released.
    done = cluster.job(job["id"])
    assert done["state"] == "completed", output(worker_dir)
    assert done["attempts"] == 1


def test_python_script_keeps_the_flags_users_know() -> None:
    help_text = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "start_http_remote_worker.py"), "--help"],
        env=child_env({"COLUMNS": "200"}),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    known = ("--server-url", "--api-key", "--worker-type", "--poll-interval", "--max-concurrent")
    for flag in (*known, "--check"):
        assert flag in help_text
    assert "gpu|cpu" in help_text
