"""The agent command: flags, env fallback and error messages."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import typer
from typer.testing import CliRunner

from taskpost.agent.cli import agent_command
from taskpost.launch import child_env, free_port

REPO = Path(__file__).resolve().parents[2]


def app() -> typer.Typer:
    cli = typer.Typer()
    cli.command("agent")(agent_command)
    return cli


def test_missing_settings_name_the_variables_and_flags() -> None:
    result = CliRunner().invoke(app(), [])
    assert result.exit_code == 2
    assert "TASKPOST_SERVER_URL / --server-url: is required" in result.output
    assert "TASKPOST_API_KEY / --api-key: is required" in result.output


def test_missing_env_file(tmp_path: Path) -> None:
    result = CliRunner().invoke(app(), ["--env-file", str(tmp_path / "nope.env")])
    assert result.exit_code == 2 and "env file not found" in result.output


def test_bad_flag_value_is_explained() -> None:
    result = CliRunner().invoke(app(), ["--server-url", "ftp://x", "--api-key", "k", "--max-concurrent", "0"])
    assert result.exit_code == 2
    assert "TASKPOST_SERVER_URL" in result.output and "TASKPOST_MAX_CONCURRENT" in result.output


def test_start_script_runs_from_a_checkout(tmp_path: Path) -> None:
    script = REPO / "scripts" / "start_http_remote_worker.py"
    done = subprocess.run(
        [sys.executable, str(script), "--help"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert done.returncode == 0, done.stderr
    for flag in ("--server-url", "--api-key", "--worker-type", "--poll-interval", "--max-concurrent"):
        assert flag in done.stdout


def _flags(help_text: str) -> set[str]:
    return set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", help_text))


def test_taskpost_agent_has_the_start_scripts_flags(tmp_path: Path) -> None:
    def help_of(*command: str) -> str:
        done = subprocess.run(
            [sys.executable, *command, "--help"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "COLUMNS": "200", "NO_COLOR": "1"},
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    script = _flags(help_of(str(REPO / "scripts" / "start_http_remote_worker.py")))
    agent = _flags(help_of("-m", "taskpost.cli", "agent"))
    command = typer.Typer(add_completion=False)
    command.command()(agent_command)
    params = typer.main.get_command(command).params
    declared = {flag for param in params for flag in param.opts + param.secondary_opts}
    assert agent == script
    assert declared <= agent and "--files-root" in agent and "--no-force-cpu" in agent


def test_a_health_port_in_use_exits_2_with_one_line_naming_the_setting(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "taskpost.agent",
                "--server-url",
                f"http://127.0.0.1:{free_port()}",  # never reached: the agent stops before registering
                "--api-key",
                "tp_w_key",
                "--task-type",
                "noop",
                "--health-port",
                str(port),
                "--log-format",
                "text",
            ],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            env=child_env({"TASKPOST_HEALTH_HOST": "127.0.0.1"}),
        )
    output = done.stdout + done.stderr
    assert done.returncode == 2, output
    assert "Traceback" not in output
    [line] = [line for line in output.splitlines() if "CRITICAL" in line]
    assert f"127.0.0.1:{port}" in line
    assert "TASKPOST_HEALTH_PORT / --health-port" in line and "0 to disable" in line
