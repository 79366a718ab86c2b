"""Worker processes the harness starts: every pid is kept, so a run can say none is left behind."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Sequence
from pathlib import Path

STARTED_PIDS: list[int] = []
"""Every process this harness started (redis-server, coordinators, agents, workers), in order."""


def remember(pid: int) -> None:
    STARTED_PIDS.append(pid)


def spawn(command: Sequence[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """Start ``command`` from the repository root (so ``bench`` imports), output to ``log``."""
    repo_root = Path(__file__).resolve().parents[2]
    with log.open("ab") as handle:
        process = subprocess.Popen(
            list(command), cwd=repo_root, env=env, stdout=handle, stderr=subprocess.STDOUT
        )
    remember(process.pid)
    return process


def stop(process: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout_s: float = 20) -> None:
    """Send ``sig`` and wait; SIGKILL if it does not exit in time."""
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def alive(pid: int) -> bool:
    """True for a running process (a zombie, exited but not yet reaped, counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        status = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return status != "Z"


def left_running() -> list[int]:
    return [pid for pid in STARTED_PIDS if alive(pid)]
