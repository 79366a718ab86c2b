"""The coordinator as a process: a clean Ctrl-C while agents hold long polls, and its own log lines."""

from __future__ import annotations

import json
import re
import signal
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx
import pytest

from taskpost.launch import ChildProcess, LocalCoordinator, child_env, free_port, wait_healthy, wait_until
from taskpost.protocol import API_PREFIX

pytestmark = [pytest.mark.e2e]

NOISE = ("Exception in ASGI application", "CancelledError", "Traceback")
STOP_S = 15
"""Deadline for a stop: well past uvicorn's 5 s graceful timeout, which a held poll used to run out."""


def _admin(coordinator: LocalCoordinator) -> httpx.Client:
    headers = {"Authorization": f"Bearer {coordinator.admin_key}"}
    return httpx.Client(base_url=coordinator.url + API_PREFIX, headers=headers, timeout=30)


def test_ctrl_c_answers_held_long_polls_and_stops_cleanly(tmp_path: Path) -> None:
    coordinator = LocalCoordinator(tmp_path, log_level="debug").start()
    agent: ChildProcess | None = None
    with _admin(coordinator) as admin:
        try:
            worker_key = admin.post("/keys", json={"role": "worker"}).json()["key"]
            agent = coordinator.start_agent(
                worker_key, "--task-type", "noop", "--poll-interval", "0.2", "--log-format", "text"
            )
            wait_until(lambda: admin.get("/workers").json(), 60, "the agent to register")
            wait_until(lambda: "holding a claim" in coordinator.process.output(), 30, "the agent's long poll")

            coordinator.process.signal(signal.SIGINT)
            assert coordinator.process.wait_exit(STOP_S) == 0
            output = coordinator.process.output()
            assert not [word for word in NOISE if word in output], output
            assert "Application shutdown complete." in output
            assert agent.running(), agent.output()

            # The agent waits out the outage and works for the coordinator when it is back.
            coordinator.start()
            job = admin.post("/jobs", json={"type": "noop"}).json()["job"]
            wait_until(
                lambda: admin.get(f"/jobs/{job['id']}").json()["state"] == "completed",
                60,
                "the agent to run a job after the restart",
            )
        finally:
            if agent is not None:
                agent.stop(signal.SIGINT)
            coordinator.stop()


def _leave_a_task_running(coordinator: LocalCoordinator) -> str:
    """Submit a job and claim it over HTTP as an agent would: it stays ``processing``."""
    with _admin(coordinator) as admin:
        job_id: str = admin.post("/jobs", json={"type": "noop"}).json()["job"]["id"]
        worker_key = admin.post("/keys", json={"role": "worker"}).json()["key"]
        worker = {"Authorization": f"Bearer {worker_key}"}
        registered = admin.post("/workers/register", json={"task_types": ["noop"]}, headers=worker)
        worker_id = registered.json()["worker_id"]
        claim = admin.post(f"/workers/{worker_id}/claim", json={"wait_s": 0}, headers=worker)
        assert [task["job_id"] for task in claim.json()["tasks"]] == [job_id]
    return job_id


def _restarted_with_a_running_task(tmp_path: Path, log_format: str) -> str:
    """The coordinator's log after a restart that found a task running; the restart's lines only."""
    coordinator = LocalCoordinator(tmp_path, log_level="info", log_format=log_format).start()
    try:
        _leave_a_task_running(coordinator)
        coordinator.process.signal(signal.SIGINT)
        assert coordinator.process.wait_exit(STOP_S) == 0
        _forget_coordinator_liveness(tmp_path / "data" / "taskpost.db")
        before = len(coordinator.process.output())
        coordinator.start()
    finally:
        coordinator.stop()
    return coordinator.process.output()[before:]


def _forget_coordinator_liveness(database: Path) -> None:
    """As in a database from before liveness was recorded: the restart cannot know how long no
    coordinator ran, so it gives the running task a fresh lease and logs one line saying so."""
    with closing(sqlite3.connect(database)) as conn, conn:
        conn.execute("DELETE FROM coordinator_replicas")


RESTART_MESSAGE = "gave 1 running tasks a fresh lease (how long no coordinator ran is not known)"


def test_json_log_lines_carry_structured_fields(tmp_path: Path) -> None:
    log = _restarted_with_a_running_task(tmp_path, "json")
    lines: list[dict[str, Any]] = [json.loads(line) for line in log.splitlines() if line.strip()]
    restart = [line for line in lines if line.get("action") == "restart"]
    assert len(restart) == 1, log
    assert restart[0]["message"] == RESTART_MESSAGE
    assert restart[0]["level"] == "INFO" and restart[0]["logger"] == "taskpost.server.services.replicas"
    assert restart[0]["tasks"] == 1 and restart[0]["timestamp"].endswith("Z")
    uvicorn = {line["message"] for line in lines if line["logger"] == "uvicorn.error"}
    assert "Application startup complete." in uvicorn, log


def test_text_log_lines_are_readable(tmp_path: Path) -> None:
    log = _restarted_with_a_running_task(tmp_path, "text")
    restart = r"^\d\d:\d\d:\d\d INFO +taskpost\.server\.services\.replicas: " + re.escape(RESTART_MESSAGE)
    assert re.search(restart + r" action=restart tasks=1 downtime_s=None$", log, re.MULTILINE), log
    assert re.search(r"^\d\d:\d\d:\d\d INFO +uvicorn\.error: Application startup complete\.$", log, re.M), log


def test_the_bootstrap_admin_key_goes_to_the_terminal_not_to_the_log(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = child_env({"TASKPOST_DATA_DIR": str(tmp_path / "data"), "TASKPOST_LOG_FORMAT": "json"})
    process = ChildProcess(["server", "--port", str(port)], env, tmp_path / "coordinator.log").start()
    try:
        wait_healthy(url, process)
        output = process.output()
        match = re.search(r"Taskpost bootstrap admin key \(shown once, store it now\):\n  (\S+)\n", output)
        assert match, output
        key = match.group(1)
        keys = httpx.get(f"{url}{API_PREFIX}/keys", headers={"Authorization": f"Bearer {key}"})
        assert keys.status_code == 200, keys.text
        log_lines = [line for line in output.splitlines() if line.startswith("{")]
        assert log_lines and all(key not in line for line in log_lines)
    finally:
        process.stop(signal.SIGINT)
