"""``taskpost demo``: the embedded default end to end, in one command.

Starts a coordinator on SQLite and one agent as child processes, submits a sample job with an
input file, waits for it, saves its outputs and stops both processes.
"""

from __future__ import annotations

import json
import secrets
import signal
import time
from pathlib import Path

from taskpost.launch import ChildProcess, child_env, wait_healthy
from taskpost.remote import CliError, RemoteCoordinator
from taskpost.submit import submit_job

SAMPLE_TEXT = "Taskpost sample input.\nA coordinator on SQLite and one agent processed this file.\n"


def run_demo(work_dir: Path, port: int) -> None:
    work_dir = work_dir.resolve()
    outputs = work_dir / "outputs"
    outputs.mkdir(parents=True, exist_ok=True)
    url = f"http://127.0.0.1:{port}"
    admin_key = secrets.token_urlsafe(24)
    env = child_env({"TASKPOST_ADMIN_KEY": admin_key, "TASKPOST_DATA_DIR": str(work_dir / "data")})
    server_log, agent_log = work_dir / "coordinator.log", work_dir / "agent.log"
    print(f"starting the coordinator on {url} (SQLite in {work_dir / 'data'})")
    coordinator = ChildProcess(["server", "--port", str(port)], env, server_log).start()
    agent = None
    try:
        try:
            wait_healthy(url, coordinator)
        except (RuntimeError, TimeoutError) as exc:
            raise CliError(f"{exc}\nsee {server_log}") from exc
        with RemoteCoordinator(url, admin_key) as remote:
            worker_key = remote.request("POST", "/keys", json={"role": "worker", "name": "demo agent"})["key"]
            print("starting one agent")
            agent_args = ["agent", "--server-url", url, "--api-key", worker_key]
            agent_args += ["--health-port", "0", "--log-format", "text"]
            agent = ChildProcess(agent_args, env, agent_log).start()
            sample = work_dir / "sample.txt"
            sample.write_text(SAMPLE_TEXT)
            print("submitting a sample job")
            started = time.monotonic()
            job = submit_job(
                remote,
                "noop",
                ["echo_inputs=true", 'outputs={"report.txt": "processed by a Taskpost agent\\n"}'],
                [sample],
                "default",
                wait=True,
                output_dir=outputs,
                wait_timeout_s=60,
            )
            elapsed = time.monotonic() - started
        print(json.dumps({"id": job["id"], "state": job["state"], "result": job["result"]}, indent=2))
        print(f"job {job['state']} in {elapsed:.2f} s; outputs saved in {outputs}")
        if job["state"] != "completed":
            raise CliError(f"the sample job ended {job['state']}: {job['error']}; see {agent_log}")
    finally:
        if agent is not None:
            agent.stop(signal.SIGTERM)
        coordinator.stop(signal.SIGTERM)
