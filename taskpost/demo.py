"""``taskpost demo``: the embedded default end to end, in one command.

Starts a coordinator on SQLite and one agent as child processes, submits the bundled samples
(speech to transcribe, a scanned page to OCR), waits for both jobs, saves their outputs and
stops both processes. The samples are made by ``scripts/make_samples.py``.
"""

from __future__ import annotations

import secrets
import signal
import time
from pathlib import Path

from taskpost.client import Client, TaskpostError
from taskpost.errors import CliError
from taskpost.launch import ChildProcess, child_env, wait_healthy, wait_until
from taskpost.protocol import JobPublic, JobState, Role

SAMPLES = Path(__file__).resolve().parent / "samples"
DEMO_JOBS = (
    ("transcription", SAMPLES / "speech.wav", "transcript.txt"),
    ("ocr", SAMPLES / "scanned_page.png", "text.txt"),
)


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
        with Client(url, admin_key, timeout=120) as client:
            worker_key = client.create_key(Role.WORKER, "demo agent").key
            print("starting one agent (it loads the models once)")
            agent_args = ["agent", "--server-url", url, "--health-port", "0", "--log-format", "text"]
            agent_args += ["--max-concurrent", "2"]
            # In the environment, not on the command line: ``ps`` shows arguments to everyone.
            agent_env = {**env, "TASKPOST_API_KEY": worker_key}
            agent = ChildProcess(agent_args, agent_env, agent_log).start()
            _wait_for_agent(client, agent, agent_log)
            for job_type, sample, main_output in DEMO_JOBS:
                _run_one(client, job_type, sample, outputs / job_type, main_output, agent_log)
        print(f"\noutputs saved under {outputs}")
    except TaskpostError as exc:
        raise CliError(f"{exc}; see {server_log}") from exc
    finally:
        if agent is not None:
            agent.stop(signal.SIGTERM)
        coordinator.stop(signal.SIGTERM)


def _wait_for_agent(client: Client, agent: ChildProcess, agent_log: Path) -> None:
    def registered() -> list[str] | None:
        if not agent.running():
            raise CliError(f"the agent exited; see {agent_log}")
        workers = client.workers()
        return list(workers[0].task_types) if workers else None

    try:
        task_types = wait_until(registered, 300, "the agent to register")
    except TimeoutError as exc:
        raise CliError(f"{exc}; see {agent_log}") from exc
    missing = {"transcription": "stt", "ocr": "ocr"}
    absent = [f"{t} (pip install 'taskpost[{extra}]')" for t, extra in missing.items() if t not in task_types]
    if absent:
        raise CliError("the agent does not run " + ", ".join(absent))


def _run_one(
    client: Client, job_type: str, sample: Path, out: Path, main_output: str, agent_log: Path
) -> JobPublic:
    print(f"\nsubmitting the {job_type} job for {sample.name}")
    started = time.monotonic()
    submitted = client.submit(job_type, files={sample.name: sample})
    job = client.wait(submitted.job.id, timeout=600)
    elapsed = time.monotonic() - started
    if job.state is not JobState.COMPLETED:
        error = job.error.message if job.error else None
        raise CliError(f"the {job_type} job ended {job.state.value}: {error}; see {agent_log}")
    client.download_outputs(job.id, out)
    print(f"{job_type} completed in {elapsed:.1f} s; outputs: {', '.join(o.name for o in job.outputs)}")
    text_file = out / main_output
    if text_file.is_file():
        print("---\n" + text_file.read_text(encoding="utf-8").strip() + "\n---")
    return job
