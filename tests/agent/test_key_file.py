"""The API key from a file (``--api-key-file`` / ``TASKPOST_API_KEY_FILE``), kept out of ``ps``."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import typer
from typer.testing import CliRunner

from taskpost.agent.cli import agent_command, load_settings
from taskpost.agent.runner import run_agent
from taskpost.agent.settings import AgentSettings
from taskpost.agent.shutdown import Shutdown
from taskpost.launch import child_env
from taskpost.protocol import API_PREFIX
from tests.agent.live import (
    LiveCoordinator,
    coordinator_settings,
    eventually,
    listening_socket,
    new_key,
    served_coordinator,
)


def key_file(tmp_path: Path, content: str, mode: int = 0o600) -> Path:
    path = tmp_path / "worker.key"
    path.write_text(content)
    path.chmod(mode)
    return path


def command_line(pid: int) -> bytes | None:
    path = Path(f"/proc/{pid}/cmdline")
    return path.read_bytes() if path.exists() else None


def app() -> typer.Typer:
    cli = typer.Typer()
    cli.command("agent")(agent_command)
    return cli


def test_the_key_comes_from_the_file_named_by_the_variable_or_the_flag(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = key_file(tmp_path, "tp_w_from_the_file\n")
    monkeypatch.setenv("TASKPOST_SERVER_URL", "http://c")
    monkeypatch.setenv("TASKPOST_API_KEY_FILE", str(path))
    assert load_settings({}, None).api_key.get_secret_value() == "tp_w_from_the_file"
    monkeypatch.delenv("TASKPOST_API_KEY_FILE")
    from_flag = load_settings({"api_key_file": path}, None)
    assert from_flag.api_key.get_secret_value() == "tp_w_from_the_file"
    assert "tp_w_from" not in str(from_flag.public_summary())


def test_a_flag_wins_over_the_other_variable_and_two_variables_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = key_file(tmp_path, "tp_w_file")
    monkeypatch.setenv("TASKPOST_SERVER_URL", "http://c")
    monkeypatch.setenv("TASKPOST_API_KEY", "tp_w_env")
    assert load_settings({"api_key_file": path}, None).api_key.get_secret_value() == "tp_w_file"
    monkeypatch.setenv("TASKPOST_API_KEY_FILE", str(path))
    assert load_settings({"api_key": "tp_w_flag"}, None).api_key.get_secret_value() == "tp_w_flag"
    result = CliRunner().invoke(app(), [])
    assert result.exit_code == 2
    assert "give the API key once" in result.output
    assert "tp_w_env" not in result.output and "tp_w_file" not in result.output


@pytest.mark.parametrize(
    ("content", "says"),
    [
        ("", "is empty"),
        ("  \n", "is empty"),
        ("two\nlines", "must hold the key alone"),
        (None, "cannot read"),  # a directory
        ("missing", "cannot read"),
    ],
)
def test_a_key_file_that_cannot_be_used_exits_2_saying_why(
    tmp_path: Path, content: str | None, says: str
) -> None:
    if content is None:
        path = tmp_path
    elif content == "missing":
        path = tmp_path / "nope.key"
    else:
        path = key_file(tmp_path, content)
    result = CliRunner().invoke(app(), ["--server-url", "http://c", "--api-key-file", str(path)])
    assert result.exit_code == 2, result.output
    assert "TASKPOST_API_KEY_FILE / --api-key-file" in result.output and says in result.output
    assert "Traceback" not in result.output


@pytest.mark.anyio
@pytest.mark.parametrize(("mode", "warned"), [(0o644, True), (0o600, False)])
async def test_a_key_file_others_can_read_is_used_with_a_warning(
    live: LiveCoordinator,
    make_settings: Callable[..., AgentSettings],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    mode: int,
    warned: bool,
) -> None:
    path = key_file(tmp_path, live.worker_key + "\n", mode)
    settings = make_settings(api_key=None, api_key_file=path, task_types=["noop"])
    shutdown = Shutdown()
    async with live.client(settings.api_key.get_secret_value()) as client:
        running = asyncio.ensure_future(
            run_agent(settings, client=client, shutdown=shutdown, install_signals=False)
        )
        await eventually(live.workers, "the agent to register with the key from the file")
        shutdown.request()
        assert await running == 0
    warnings = [
        record.getMessage()
        for record in caplog.records
        if record.levelname == "WARNING" and str(path) in record.getMessage()
    ]
    assert bool(warnings) is warned
    if warned:
        assert "readable by users other than its owner" in warnings[0] and "chmod 600" in warnings[0]


@pytest.mark.anyio
async def test_an_agent_process_started_with_a_key_file_runs_jobs_and_shows_no_key(tmp_path: Path) -> None:
    sock = listening_socket()
    async with served_coordinator(coordinator_settings(tmp_path / "coordinator"), sock) as url:
        worker_key, client_key = await new_key(url, "worker"), await new_key(url, "client")
        path = key_file(tmp_path, worker_key + "\n")
        agent = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "taskpost.agent",
            "--server-url",
            url,
            "--api-key-file",
            str(path),
            "--task-type",
            "noop",
            "--health-port",
            "0",
            "--work-dir",
            str(tmp_path / "work"),
            cwd=tmp_path,
            env=child_env({}),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        try:
            async with httpx.AsyncClient(
                base_url=url + API_PREFIX, headers={"Authorization": f"Bearer {client_key}"}
            ) as http:
                submitted = await http.post("/jobs", json={"type": "noop", "params": {"n": 1}})
                assert submitted.status_code == 201, submitted.text
                job_id = submitted.json()["job"]["id"]

                async def completed() -> bool:
                    return (await http.get(f"/jobs/{job_id}")).json()["state"] == "completed"

                await eventually(completed, "the agent to run the job")
            shown = command_line(agent.pid)
            if shown is not None:  # what `ps` shows every user of the host
                assert worker_key.encode() not in shown and str(path).encode() in shown
        finally:
            agent.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(agent.wait(), 30) == 0
