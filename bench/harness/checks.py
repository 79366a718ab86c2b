"""What the harness needs on this machine, and a line for each thing that is missing."""

from __future__ import annotations

import importlib.util
import os
import platform
import shutil
import subprocess
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from bench.harness.workloads import CELERY_PREFORK, CELERY_SOLO, RQ, TASKPOST_PG, TASKPOST_SQLITE


@dataclass(frozen=True)
class Availability:
    systems: tuple[str, ...]
    """The systems that can run here, in table order."""
    missing: tuple[str, ...]
    """One line per missing piece: what it is, what it keeps from running, how to get it."""
    plots: bool


def _has_module(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


def _postgres_missing() -> str | None:
    if os.environ.get("TASKPOST_TEST_POSTGRES_URL"):
        return None
    if not _has_module("asyncpg"):
        return "asyncpg is not installed (pip install 'taskpost[postgres]'): Taskpost on PostgreSQL skipped"
    if shutil.which("initdb") is None and not list(Path("/usr/lib/postgresql").glob("*/bin/initdb")):
        return "PostgreSQL binaries (initdb, pg_ctl, postgres) not found: Taskpost on PostgreSQL skipped"
    return None


def find_availability() -> Availability:
    missing: list[str] = []
    systems = [TASKPOST_SQLITE]
    postgres = _postgres_missing()
    if postgres:
        missing.append(postgres)
    else:
        systems.append(TASKPOST_PG)
    redis_server = shutil.which("redis-server") is not None
    if not redis_server:
        missing.append(
            "redis-server is not on PATH (Debian: apt-get install redis-server): RQ and Celery skipped"
        )
    if not _has_module("redis"):
        missing.append("redis-py is not installed (pip install redis): RQ and Celery skipped")
    redis_ready = redis_server and _has_module("redis")
    if not _has_module("rq"):
        missing.append("rq is not installed (pip install 'rq>=2'): RQ skipped")
    elif redis_ready:
        systems.append(RQ)
    if not _has_module("celery"):
        missing.append("celery is not installed (pip install 'celery[redis]>=5'): Celery skipped")
    elif redis_ready:
        systems += [CELERY_SOLO, CELERY_PREFORK]
    plots = _has_module("matplotlib")
    if not plots:
        missing.append("matplotlib is not installed (pip install matplotlib): no plots")
    return Availability(tuple(systems), tuple(missing), plots)


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _redis_server_version() -> str:
    path = shutil.which("redis-server")
    if path is None:
        return "not installed"
    output = subprocess.run([path, "--version"], capture_output=True, text=True, check=False).stdout
    for word in output.split():
        if word.startswith("v="):
            return word[2:]
    return output.strip() or "unknown"


def machine_facts() -> dict[str, str]:
    return {
        "cores": str(os.cpu_count()),
        "cpu": _cpu_model(),
        "python": sys.version.split()[0],
        "os": platform.platform(),
        "taskpost": _version("taskpost"),
        "rq": _version("rq"),
        "celery": _version("celery"),
        "redis-py": _version("redis"),
        "redis-server": _redis_server_version(),
    }
