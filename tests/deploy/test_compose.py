"""The compose files: each service's command, variables, health check, ports and stop timeout
exist in the code, and each file does what docs/deploy.md says it does."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from tests.deploy import truth
from tests.deploy.conftest import COMPOSE_FILES
from tests.deploy.dockerfile import env as image_env
from tests.deploy.dockerfile import exec_form, last, stages

MAX_LONG_POLL_S = 60  # Settings.long_poll_s allows up to this


def _load(name: str) -> dict[str, Any]:
    data = yaml.safe_load((truth.REPO_ROOT / name).read_text())
    assert isinstance(data, dict)
    return data


def _taskpost_services(name: str) -> dict[str, dict[str, Any]]:
    """The services that run a Taskpost image (not postgres, not the proxy)."""
    return {key: svc for key, svc in _load(name)["services"].items() if "taskpost" in svc.get("image", "")}


def _target(service: dict[str, Any], services: dict[str, dict[str, Any]]) -> str:
    """The Dockerfile target of a service's image, from its own build or another's with that image."""
    for other in (service, *services.values()):
        if other.get("image") == service["image"] and "build" in other:
            return str(other["build"]["target"])
    raise AssertionError(f"nothing builds {service['image']}")


def _argv(service: dict[str, Any], target: str) -> list[list[str]]:
    command = service.get("command") or exec_form(last(target, "CMD"))
    if service.get("entrypoint") == ["sh", "-c"]:
        return truth.commands_in_shell(" ".join(command))
    return [list(command)]


def _seconds(text: str) -> float:
    match = re.fullmatch(r"(\d+)(s|m)", text)
    assert match, text
    return int(match[1]) * (60 if match[2] == "m" else 1)


@pytest.mark.parametrize("name", COMPOSE_FILES)
def test_commands_variables_and_targets_exist(name: str) -> None:
    services = _load(name)["services"]
    ours = _taskpost_services(name)
    assert ours
    for key, service in ours.items():
        target = _target(service, services)
        assert target in stages(), f"{key}: no Dockerfile target {target}"
        for argv in _argv(service, target):
            assert truth.command_problems(argv) == [], key
        assert truth.unknown_env(service.get("environment", {})) == [], key
        for dependency in service.get("depends_on", {}):
            assert dependency in services, f"{key} depends on {dependency}"


@pytest.mark.parametrize("name", COMPOSE_FILES)
def test_health_checks_ports_and_stop_timeouts(name: str) -> None:
    services = _load(name)["services"]
    for key, service in _taskpost_services(name).items():
        target = _target(service, services)
        (argv, *_) = _argv(service, target)
        variables = {**image_env(target), **service.get("environment", {})}
        if argv[1] == "keys":
            continue
        if argv[1] == "server":
            port, serves = int(argv[argv.index("--port") + 1]), truth.coordinator_serves
        else:
            port, serves = (
                int(variables.get("TASKPOST_HEALTH_PORT", truth.AGENT_HEALTH_PORT)),
                truth.agent_serves,
            )
            grace = float(variables.get("TASKPOST_SHUTDOWN_GRACE_S", truth.AGENT_GRACE_S))
            assert _seconds(service["stop_grace_period"]) >= grace + truth.DRAIN_OVERHEAD_S, key
            assert "ports" not in service and "container_name" not in service, f"{key}: --scale needs neither"
        (url,) = re.findall(r"http://127\.0\.0\.1:(\d+)(/[\w/]*)", " ".join(service["healthcheck"]["test"]))
        assert int(url[0]) == port and serves(url[1]), key
        for mapping in service.get("ports", []):
            assert int(str(mapping).rsplit(":", 1)[1]) == port, key


@pytest.mark.parametrize("name", ["docker-compose.yml", "docker-compose.postgres.yml"])
def test_the_agent_uses_the_worker_key_the_keys_service_writes(name: str) -> None:
    services = _load(name)["services"]
    keys, agent = services["keys"], services["agent-cpu"]
    (create,) = truth.commands_in_shell(" ".join(keys["command"]))
    assert create[:3] == ["taskpost", "keys", "create"] and create[create.index("--role") + 1] == "worker"
    key_file = agent["environment"]["TASKPOST_API_KEY_FILE"]
    assert f"> {key_file}.new" in keys["command"][0] and f"mv {key_file}.new {key_file}" in keys["command"][0]
    key_volume = {mount.split(":")[0] for mount in keys["volumes"]}
    assert {mount.split(":")[0] for mount in agent["volumes"]} & key_volume
    assert agent["depends_on"]["keys"]["condition"] == "service_completed_successfully"
    assert (
        keys["environment"]["TASKPOST_API_KEY"]
        == services["coordinator"]["environment"]["TASKPOST_ADMIN_KEY"]
    )
    assert "TASKPOST_API_KEY" not in agent["environment"]


def test_sqlite_compose_keeps_its_data_on_a_volume() -> None:
    coordinator = _load("docker-compose.yml")["services"]["coordinator"]
    mounts = dict(mount.split(":")[::-1] for mount in coordinator["volumes"])
    assert mounts[coordinator["environment"]["TASKPOST_DATA_DIR"]] in _load("docker-compose.yml")["volumes"]


def test_workers_compose_reserves_a_gpu_and_caches_models() -> None:
    data = _load("docker-compose.workers.yml")
    gpu = data["services"]["agent-gpu"]
    (device,) = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and device["capabilities"] == ["gpu"]
    for service in data["services"].values():
        assert service["env_file"] == ".env"
        # The example .env sets it empty, which would mean a default under the shared cache.
        assert service["environment"]["TASKPOST_WORK_DIR"] == image_env("agent-base")["TASKPOST_WORK_DIR"]
        assert any(mount.endswith(":/home/taskpost/.cache") for mount in service["volumes"])
    example = (truth.REPO_ROOT / "configs" / "http-worker.env.example").read_text()
    assert truth.unknown_env(re.findall(r"^(TASKPOST_\w+)=", example, re.MULTILINE)) == []


def test_postgres_compose_runs_two_coordinators_behind_the_proxy() -> None:
    data = _load("docker-compose.postgres.yml")
    coordinator, proxy = data["services"]["coordinator"], data["services"]["proxy"]
    assert coordinator["deploy"]["replicas"] >= 2
    env = coordinator["environment"]
    assert env["TASKPOST_DATABASE_URL"].startswith("postgresql://")
    assert any(mount == f"blobs:{env['TASKPOST_BLOB_DIR']}" for mount in coordinator["volumes"])
    (config_mount,) = proxy["volumes"]
    config = (truth.REPO_ROOT / config_mount.split(":")[0]).read_text()
    port = coordinator["command"][coordinator["command"].index("--port") + 1]
    assert f"http://coordinator:{port};" in config
    read_timeout = re.search(r"proxy_read_timeout (\d+)s;", config)
    assert read_timeout and int(read_timeout[1]) > MAX_LONG_POLL_S
    assert "proxy_buffering off;" in config, "event streams must not be buffered"
    for service in ("keys", "agent-cpu"):
        assert data["services"][service]["environment"]["TASKPOST_SERVER_URL"] == "http://proxy:8000"
