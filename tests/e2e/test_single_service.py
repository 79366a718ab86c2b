"""``taskpost server --with-agent``: one process serving the coordinator and running an agent."""

from __future__ import annotations

import signal
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx

from taskpost.launch import ChildProcess, child_env, free_port, wait_healthy, wait_until
from taskpost.local import run_with_coordinator
from taskpost.protocol import API_PREFIX
from taskpost.protocol.admin import KeyPublic
from taskpost.protocol.jobs import JobPublic
from taskpost.server.coordinator import Coordinator
from taskpost.server.services import jobs
from taskpost.server.services.keys import list_keys
from taskpost.server.services.workers import list_workers
from taskpost.server.settings import Settings
from taskpost.single_service import MINTED_KEY_NAME
from tests.e2e.conftest import ADMIN_KEY, COORDINATOR_ENV


def server_process(tmp_path: Path, port: int, *extra: str) -> ChildProcess:
    env = child_env(
        {"TASKPOST_ADMIN_KEY": ADMIN_KEY, "TASKPOST_DATA_DIR": str(tmp_path / "data"), **COORDINATOR_ENV}
    )
    args = ["server", "--port", str(port), "--log-level", "info", *extra]
    return ChildProcess(args, env, tmp_path / f"server-{len(extra)}.log")


def test_server_with_agent_finishes_its_task_on_sigterm(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    both = server_process(
        tmp_path,
        port,
        "--with-agent",
        "--task-type",
        "noop",
        "--poll-interval",
        "0.2",
        "--work-dir",
        str(tmp_path / "work"),
    )
    both.start()
    api = httpx.Client(base_url=url + API_PREFIX, headers={"Authorization": f"Bearer {ADMIN_KEY}"})
    try:
        wait_healthy(url, both)
        health = httpx.get(f"{url}/health").json()
        assert health["database"] == "ok"
        assert health["agent"]["status"] == "ok"
        first = api.post("/jobs", json={"type": "noop"}).json()["job"]
        wait_until(lambda: api.get(f"/jobs/{first['id']}").json()["state"] == "completed", 30, "a job")

        job = api.post("/jobs", json={"type": "noop", "params": {"sleep_s": 2}}).json()["job"]
        wait_until(lambda: api.get(f"/jobs/{job['id']}").json()["state"] == "processing", 30, "the task")
        both.signal(signal.SIGTERM)

        def draining() -> dict[str, Any] | None:
            answer = httpx.get(f"{url}/health")
            body: dict[str, Any] = answer.json()
            return body if answer.status_code == 503 and body["agent"]["status"] == "stopping" else None

        # While the agent drains, the coordinator still serves and /health says so.
        assert job["id"] in wait_until(draining, 10, "/health to report the drain")["agent"]["running_tasks"]
        assert both.wait_exit(30) == 0, both.output()[-3000:]
    finally:
        api.close()
        both.kill()
    assert "Traceback" not in both.output()

    # The task was reported before the process exited: completed on its first attempt; the
    # agent deregistered and its minted key was revoked.
    done, workers, minted = run_with_coordinator(Settings(data_dir=tmp_path / "data"), stored(job["id"]))
    assert (done.state, done.attempts) == ("completed", 1)
    assert workers == []
    assert len(minted) == 1 and minted[0].revoked_at is not None


Stored = tuple[JobPublic, list[Any], list[KeyPublic]]


def stored(job_id: str) -> Callable[[Coordinator], Awaitable[Stored]]:
    """What the database holds once the process has exited."""

    async def read(coord: Coordinator) -> Stored:
        minted = [key for key in await list_keys(coord) if key.name == MINTED_KEY_NAME]
        return await jobs.get(coord, job_id, None), await list_workers(coord), minted

    return read


def test_agent_flags_need_with_agent(tmp_path: Path) -> None:
    plain = server_process(tmp_path, free_port(), "--max-concurrent", "2").start()
    assert plain.wait_exit(30) == 2
    assert "unexpected arguments --max-concurrent 2" in plain.output()
