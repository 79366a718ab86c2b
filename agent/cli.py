"""The ``taskpost agent`` command (and ``python -m taskpost.agent``): flags over ``TASKPOST_*`` settings.

Every flag is optional: a flag that is not given falls back to the environment, then to the
``.env`` file, then to the default (see ``configs/http-worker.env.example``).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError

from taskpost.agent import event_loop
from taskpost.agent.logging import configure_logging
from taskpost.agent.preflight import PreflightFailure, check_coordinator
from taskpost.agent.runner import EXIT_FATAL, run_agent
from taskpost.agent.settings import AgentSettings, LogFormat
from taskpost.protocol import WorkerType

_FLAGS = {
    "server_url": "--server-url",
    "api_key": "--api-key",
    "api_key_file": "--api-key-file",
    "worker_type": "--worker-type",
    "poll_interval": "--poll-interval",
    "max_concurrent": "--max-concurrent",
    "max_claim_batch": "--max-claim-batch",
    "health_port": "--health-port",
    "labels": "--label",
    "task_types": "--task-type",
    "name": "--name",
    "shutdown_grace_s": "--shutdown-grace",
    "work_dir": "--work-dir",
    "force_cpu": "--force-cpu",
    "files_roots": "--files-root",
    "log_level": "--log-level",
    "log_format": "--log-format",
    "allow_private_urls": "--allow-private-urls",
    "url_allow_networks": "--url-allow-network",
    "webpage_robots": "--webpage-robots",
    "llm_base_url": "--llm-base-url",
    "llm_model": "--llm-model",
    "llm_profiles_file": "--llm-profiles-file",
}


def _split(values: list[str] | None) -> list[str] | None:
    """``--label a --label b,c`` -> ``[a, b, c]``."""
    if values is None:
        return None
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


def _explain(error: ValidationError) -> str:
    lines = ["invalid agent configuration:"]
    for item in error.errors():
        if not item["loc"]:  # a check across settings: its message names them
            lines.append(f"  {item['msg'].removeprefix('Value error, ')}")
            continue
        field = str(item["loc"][0])
        where = f"TASKPOST_{field.upper()}"
        if field in _FLAGS:
            where += f" / {_FLAGS[field]}"
        message = "is required" if item["type"] == "missing" else item["msg"]
        if field == "api_key" and item["type"] == "missing":
            message += " (or TASKPOST_API_KEY_FILE / --api-key-file)"
        lines.append(f"  {where}: {message}")
    return "\n".join(lines)


_EITHER_OR = (("api_key", "api_key_file"), ("api_key_file", "api_key"))
"""A flag that sets one of these hides the other's variable (a flag wins over the environment)."""


def load_settings(overrides: dict[str, Any], env_file: Path | None) -> AgentSettings:
    """Settings from flags (``overrides``, None values ignored), environment and env file."""
    given = {key: value for key, value in overrides.items() if value is not None}
    for flag, hidden in _EITHER_OR:
        if flag in given:
            given.setdefault(hidden, None)
    return AgentSettings(_env_file=env_file or ".env", **given)


def agent_command(
    server_url: Annotated[
        str | None, typer.Option("--server-url", help="Coordinator URL, e.g. http://host:8000.")
    ] = None,
    api_key: Annotated[
        str | None,
        typer.Option(
            "--api-key",
            help="API key with the worker role (visible in ps: prefer --api-key-file).",
            show_default=False,
        ),
    ] = None,
    api_key_file: Annotated[
        Path | None, typer.Option("--api-key-file", help="File holding the API key (chmod 600).")
    ] = None,
    worker_type: Annotated[
        WorkerType | None, typer.Option("--worker-type", case_sensitive=False, help="gpu or cpu.")
    ] = None,
    poll_interval: Annotated[
        float | None, typer.Option("--poll-interval", help="First back-off (s) when unreachable.")
    ] = None,
    max_concurrent: Annotated[int | None, typer.Option("--max-concurrent", help="Tasks at once.")] = None,
    max_claim_batch: Annotated[
        int | None, typer.Option("--max-claim-batch", help="Most tasks per claim.")
    ] = None,
    health_port: Annotated[int | None, typer.Option("--health-port", help="0 disables /health.")] = None,
    label: Annotated[
        list[str] | None, typer.Option("--label", help="Agent label (repeatable or a,b).")
    ] = None,
    task_type: Annotated[
        list[str] | None, typer.Option("--task-type", help="Task type to run (repeatable); default all.")
    ] = None,
    name: Annotated[str | None, typer.Option("--name", help="Agent name; default hostname-pid.")] = None,
    shutdown_grace: Annotated[
        float | None, typer.Option("--shutdown-grace", help="Seconds running tasks get on SIGTERM.")
    ] = None,
    work_dir: Annotated[Path | None, typer.Option("--work-dir", help="Root of per-task folders.")] = None,
    force_cpu: Annotated[
        bool | None, typer.Option("--force-cpu/--no-force-cpu", help="Ask handlers not to use a GPU.")
    ] = None,
    files_root: Annotated[
        list[Path] | None,
        typer.Option("--files-root", help="Directory jobs may read by local_path (repeatable)."),
    ] = None,
    log_level: Annotated[str | None, typer.Option("--log-level", help="DEBUG, INFO, WARNING...")] = None,
    log_format: Annotated[LogFormat | None, typer.Option("--log-format", help="json or text.")] = None,
    allow_private_urls: Annotated[
        bool | None,
        typer.Option(
            "--allow-private-urls/--refuse-private-urls",
            help="Let jobs fetch private, loopback and link-local addresses.",
        ),
    ] = None,
    url_allow_network: Annotated[
        list[str] | None,
        typer.Option("--url-allow-network", help="CIDR allowed while private URLs are refused (repeatable)."),
    ] = None,
    webpage_robots: Annotated[
        bool | None,
        typer.Option("--webpage-robots/--no-webpage-robots", help="webpage jobs honour robots.txt."),
    ] = None,
    llm_base_url: Annotated[
        str | None, typer.Option("--llm-base-url", help="OpenAI-compatible API for analyze/describe.")
    ] = None,
    llm_model: Annotated[
        str | None, typer.Option("--llm-model", help="LLM model when a job names none.")
    ] = None,
    llm_profiles_file: Annotated[
        Path | None, typer.Option("--llm-profiles-file", help="TOML/JSON file of named LLM providers.")
    ] = None,
    env_file: Annotated[
        Path | None, typer.Option("--env-file", help="Env file to read (default .env).")
    ] = None,
    check: Annotated[
        bool,
        typer.Option(
            "--check", help="Only check that the coordinator answers and takes the key for an agent."
        ),
    ] = False,
) -> None:
    """Run a Taskpost agent: register with the coordinator, claim tasks and run them."""
    flags = dict(locals())
    settings = settings_from_flags(flags)
    if check:
        raise typer.Exit(run_check(settings))
    configure_logging(settings.log_level, settings.log_format)
    try:
        code = event_loop.run(run_agent(settings))
    except KeyboardInterrupt:
        code = 130
    raise typer.Exit(code)


def run_check(settings: AgentSettings) -> int:
    """``--check``: one line on stdout when all is well, on stderr (exit 2) when not."""
    try:
        version = check_coordinator(settings.server_url, settings.api_key.get_secret_value())
    except PreflightFailure as exc:
        typer.echo(f"error: {exc}", err=True)
        return EXIT_FATAL
    typer.echo(f"ok: coordinator {version} at {settings.server_url} accepts this key for an agent")
    return 0


def settings_from_flags(flags: dict[str, Any]) -> AgentSettings:
    """Settings from ``agent_command``'s parameters (as named there); exits with a message when
    they are invalid."""
    env_file: Path | None = flags.get("env_file")
    if env_file is not None and not env_file.is_file():
        typer.echo(f"env file not found: {env_file}", err=True)
        raise typer.Exit(EXIT_FATAL)
    same = (
        "server_url", "api_key", "api_key_file", "worker_type", "poll_interval", "max_concurrent",
        "max_claim_batch", "health_port", "name", "work_dir", "force_cpu", "log_level", "log_format",
        "allow_private_urls", "webpage_robots", "llm_base_url", "llm_model", "llm_profiles_file",
    )  # fmt: skip
    files_root = flags.get("files_root")
    overrides: dict[str, Any] = {key: flags.get(key) for key in same} | {
        "labels": _split(flags.get("label")),
        "task_types": _split(flags.get("task_type")),
        "shutdown_grace_s": flags.get("shutdown_grace"),
        "files_roots": [str(root) for root in files_root] if files_root else None,
        "url_allow_networks": _split(flags.get("url_allow_network")),
    }
    try:
        return load_settings(overrides, env_file)
    except ValidationError as exc:
        typer.echo(_explain(exc), err=True)
        raise typer.Exit(EXIT_FATAL) from None


def main(argv: list[str] | None = None) -> None:
    """Run ``agent_command`` as a program of its own (``python -m taskpost.agent``, the start scripts)."""
    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    app.command()(agent_command)
    app(args=argv if argv is not None else sys.argv[1:], prog_name="taskpost-agent")
