"""deploy/systemd: the units' commands and variables exist, agents get longer than their drain
to stop, the sandboxing is on, and ``systemd-analyze verify`` accepts them where it runs."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from taskpost.agent.runner import EXIT_FATAL
from taskpost.server.serve import STARTUP_FAILURE
from tests.deploy import truth

UNITS = truth.REPO_ROOT / "deploy" / "systemd"
INSTALLED_TASKPOST = "/opt/taskpost/venv/bin/taskpost"


def _unit(name: str) -> dict[str, list[str]]:
    """``Key`` -> every value it is given (systemd allows repeats, e.g. ``Environment``)."""
    found: dict[str, list[str]] = {}
    for line in (UNITS / name).read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            found.setdefault(key.strip(), []).append(value.strip())
    return found


def _environment(unit: dict[str, list[str]]) -> dict[str, str]:
    return dict(item.split("=", 1) for item in unit.get("Environment", []))


@pytest.mark.parametrize("name", ["taskpost-agent@.service", "taskpost-coordinator.service"])
def test_commands_variables_and_sandboxing(name: str) -> None:
    unit = _unit(name)
    (exec_start,) = unit["ExecStart"]
    argv = shlex.split(exec_start)
    assert argv[0] == INSTALLED_TASKPOST
    assert truth.command_problems(argv) == []
    assert truth.unknown_env(_environment(unit)) == []
    assert unit["KillSignal"] == ["SIGTERM"]
    assert unit["Restart"] == ["on-failure"]
    assert unit["ProtectSystem"] == ["strict"] and unit["NoNewPrivileges"] == ["yes"]
    assert unit["StateDirectory"]


def _flag(unit: dict[str, list[str]], flag: str) -> str:
    argv = shlex.split(unit["ExecStart"][0])
    return argv[argv.index(flag) + 1]


def test_an_agent_instance_has_its_own_env_file_and_time_to_drain() -> None:
    unit = _unit("taskpost-agent@.service")
    (env_file,) = unit["EnvironmentFile"]
    assert "%i" in env_file and not env_file.startswith("-"), "a missing env file must stop the start"
    # Flags, because the env file (copied from the example, whose empty values count) wins over
    # Environment= lines.
    assert _flag(unit, "--work-dir") == "%S/" + unit["StateDirectory"][0]
    assert "%i" in _flag(unit, "--name")
    example = (truth.REPO_ROOT / "configs" / "http-worker.env.example").read_text()
    grace = float(re.search(r"^TASKPOST_SHUTDOWN_GRACE_S=(\S+)", example, re.MULTILINE)[1])  # type: ignore[index]
    assert int(unit["TimeoutStopSec"][0]) >= grace + truth.DRAIN_OVERHEAD_S
    assert unit["KillMode"] == ["mixed"], "SIGTERM to the agent, not to the tools its tasks run"
    assert unit["RestartPreventExitStatus"] == [str(EXIT_FATAL)]


def test_the_coordinator_keeps_its_data_in_the_state_directory() -> None:
    unit = _unit("taskpost-coordinator.service")
    assert _flag(unit, "--data-dir") == "%S/" + unit["StateDirectory"][0]
    assert unit["RestartPreventExitStatus"] == [str(STARTUP_FAILURE)]


def test_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze, taskpost = shutil.which("systemd-analyze"), shutil.which("taskpost")
    if analyze is None or taskpost is None:
        pytest.skip("systemd-analyze (or an installed taskpost) is not here")
    # verify checks that ExecStart exists: point it at this machine's taskpost; a template is
    # verified as one of its instances.
    copies = []
    for name, as_name in (
        ("taskpost-coordinator.service",) * 2,
        ("taskpost-agent@.service", "taskpost-agent@gpu0.service"),
    ):
        copy = tmp_path / as_name
        copy.write_text((UNITS / name).read_text().replace(INSTALLED_TASKPOST, taskpost))
        copies.append(str(copy))
    result = subprocess.run([analyze, "verify", *copies], capture_output=True, text=True, timeout=60)
    if result.returncode != 0 and str(tmp_path) not in result.stderr:
        pytest.skip(f"systemd-analyze cannot run here: {result.stderr.strip()[:300]}")
    assert result.returncode == 0 and result.stderr.strip() == "", result.stderr
