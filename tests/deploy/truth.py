"""What the deployment files may name, read from the code itself: commands and flags from the
typer app, ``TASKPOST_*`` variables from the two settings classes and the CLI's options, metric
names from the coordinator's registry, health paths from the routes that serve them."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Sequence
from functools import cache
from pathlib import Path
from typing import Any

import typer.main
from prometheus_client.metrics import MetricWrapperBase

from taskpost.agent.handlers import BUILTIN_HANDLERS
from taskpost.agent.health import HealthServer
from taskpost.agent.settings import AgentSettings
from taskpost.agent.state import AgentState
from taskpost.cli import app
from taskpost.server.api import routes_health
from taskpost.server.metrics import Metrics
from taskpost.server.settings import Settings

REPO_ROOT = Path(__file__).resolve().parents[2]

DRAIN_OVERHEAD_S = 30
"""What an agent may take after its shutdown grace (agent/runner.py): flushing completions (10 s),
releasing leases (10 s), waiting for cancelled tasks (5 s) and deregistering (5 s)."""

AGENT_HEALTH_PORT: int = AgentSettings.model_fields["health_port"].default
AGENT_GRACE_S: float = AgentSettings.model_fields["shutdown_grace_s"].default
TASK_TYPES = frozenset(entry.name for entry in BUILTIN_HANDLERS)


@cache
def env_names() -> frozenset[str]:
    """Every ``TASKPOST_*`` variable something reads: settings fields and CLI options' envvars."""
    names = {f"TASKPOST_{field.upper()}" for field in Settings.model_fields}
    names |= {f"TASKPOST_{field.upper()}" for field in AgentSettings.model_fields}
    for command in _commands(typer.main.get_command(app)):
        for param in command.params:
            envvars = param.envvar if isinstance(param.envvar, list | tuple) else [param.envvar]
            names |= {name for name in envvars if name}
    return frozenset(names)


def unknown_env(names: Iterable[str]) -> list[str]:
    """The ``TASKPOST_*`` names among ``names`` that nothing reads."""
    return sorted(name for name in names if name.startswith("TASKPOST_") and name not in env_names())


def _commands(command: Any) -> Iterable[Any]:
    yield command
    for child in getattr(command, "commands", {}).values():
        yield from _commands(child)


def command_problems(argv: Sequence[str]) -> list[str]:
    """Why ``argv`` (``taskpost <command> [--flag value]...``) would not run; empty when it would."""
    if not argv or Path(argv[0]).name != "taskpost":
        return [f"{argv!r} does not run taskpost"]
    # Duck-typed: typer's groups and commands are not always click's own classes.
    command: Any = typer.main.get_command(app)
    words = list(argv[1:])
    while hasattr(command, "commands"):
        if not words or words[0] not in command.commands:
            return [f"{' '.join(argv)}: no such command {words[:1]}"]
        command = command.commands[words.pop(0)]
    known = {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)}
    return [
        f"{' '.join(argv)}: {command.name} has no option {word.split('=')[0]}"
        for word in words
        if word.startswith("-") and word.split("=")[0] not in known
    ]


def commands_in_shell(text: str) -> list[list[str]]:
    """The ``taskpost ...`` commands in a shell line, up to a redirection or an operator."""
    found = []
    for match in re.finditer(r"\btaskpost((?:\s+[^\s;&|<>]+)*)", text):
        words = match.group(1).split()
        found.append(["taskpost", *words])
    return found


@cache
def metric_labels() -> dict[str, frozenset[str]]:
    """Every series name the coordinator's /metrics has, with the label names it carries."""
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}
    found: dict[str, frozenset[str]] = {}
    for metric in vars(Metrics()).values():
        if isinstance(metric, MetricWrapperBase):
            for suffix in suffixes[str(metric._type)]:
                found[metric._name + suffix] = frozenset(metric._labelnames)
    return found


def query_metrics(query: str) -> list[tuple[str, set[str]]]:
    """The ``taskpost_`` metrics a PromQL query names, each with the label names it matches on."""
    found = []
    for match in re.finditer(r"\b(taskpost_\w+)(?:\{([^}]*)\})?", query):
        labels = {
            part.split("=")[0].rstrip("!~").strip() for part in (match.group(2) or "").split(",") if part
        }
        found.append((match.group(1), labels))
    return found


def coordinator_serves(path: str) -> bool:
    return any(getattr(route, "path", None) == path for route in routes_health.router.routes)


def agent_serves(path: str) -> bool:
    settings = AgentSettings(server_url="http://127.0.0.1:1", api_key="x" * 8, _env_file=None)
    server = HealthServer(settings, AgentState(), [])
    status, _ = server._route("GET", path)
    return status != 404


def pyproject_extras() -> frozenset[str]:
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    return frozenset(project["optional-dependencies"])
