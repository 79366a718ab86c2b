"""Start coordinators and agents as child processes: for ``taskpost demo``, tests and benchmarks."""

from __future__ import annotations

import os
import secrets
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Literal, TypeVar

import httpx

from taskpost.protocol.logs import LogFormat

T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until(
    condition: Callable[[], T | None],
    timeout_s: float = 30,
    what: str = "condition",
    interval_s: float = 0.05,
) -> T:
    """Poll ``condition`` every ``interval_s`` until it returns something truthy; fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval_s)
    raise TimeoutError(f"timed out after {timeout_s} s waiting for {what}")


def child_env(extra: dict[str, str]) -> dict[str, str]:
    """This environment without TASKPOST_ settings, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKPOST_")}
    env.update(PYTHONUNBUFFERED="1", **extra)
    return env


class ChildProcess:
    """One ``taskpost`` subcommand in a child process, its output in a log file.

    ``preexec_fn`` runs in the child before it starts (e.g. to lower a resource limit).
    """

    def __init__(
        self,
        args: list[str],
        env: dict[str, str],
        log: Path,
        preexec_fn: Callable[[], None] | None = None,
    ) -> None:
        self.args, self.env, self.log = args, env, log
        self.preexec_fn = preexec_fn
        self.popen: subprocess.Popen[bytes] | None = None

    def start(self) -> ChildProcess:
        with self.log.open("ab") as handle:
            self.popen = subprocess.Popen(
                [sys.executable, "-m", "taskpost.cli", *self.args],
                env=self.env,
                stdout=handle,
                stderr=subprocess.STDOUT,
                preexec_fn=self.preexec_fn,
            )
        return self

    def signal(self, sig: int) -> None:
        assert self.popen is not None
        self.popen.send_signal(sig)

    def kill(self) -> None:
        if self.popen is not None and self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait()

    def wait_exit(self, timeout_s: float = 30) -> int:
        assert self.popen is not None
        return self.popen.wait(timeout=timeout_s)

    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def stop(self, sig: int, timeout_s: float = 15) -> None:
        """Send ``sig``, wait, and kill if it does not exit in time."""
        if not self.running():
            return
        self.signal(sig)
        try:
            self.wait_exit(timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def wait_healthy(
    url: str, process: ChildProcess, timeout_s: float = 30, verify: ssl.SSLContext | bool = True
) -> None:
    def healthy() -> bool:
        if not process.running():
            raise RuntimeError(f"the coordinator exited early:\n{process.output()[-3000:]}")
        try:
            return httpx.get(f"{url}/health", timeout=1, verify=verify).status_code == 200
        except httpx.HTTPError:
            return False

    wait_until(healthy, timeout_s, "the coordinator's /health")


class LocalCoordinator:
    """A coordinator child process on a fresh SQLite data folder, with an admin key of its own.

    ``settings`` are added to its environment (``TASKPOST_...``), ``server_args`` to its command
    line; ``scheme="https"`` with ``verify`` (the CA to trust) for one serving TLS.
    """

    def __init__(
        self,
        work: Path,
        port: int | None = None,
        *,
        log_level: str = "warning",
        log_format: LogFormat = "text",
        settings: Mapping[str, str] | None = None,
        server_args: Sequence[str] = (),
        scheme: Literal["http", "https"] = "http",
        verify: ssl.SSLContext | bool = True,
        preexec_fn: Callable[[], None] | None = None,
    ) -> None:
        self.port = port or free_port()
        self.url = f"{scheme}://127.0.0.1:{self.port}"
        self.verify = verify
        self.admin_key = secrets.token_urlsafe(24)
        own = {"TASKPOST_ADMIN_KEY": self.admin_key, "TASKPOST_DATA_DIR": str(work / "data")}
        self.env = child_env({**own, **(settings or {})})
        self.work = work
        args = ["server", "--port", str(self.port), "--log-level", log_level, "--log-format", log_format]
        self.process = ChildProcess([*args, *server_args], self.env, work / "coordinator.log", preexec_fn)

    def start(self) -> LocalCoordinator:
        self.process.start()
        wait_healthy(self.url, self.process, verify=self.verify)
        return self

    def start_agent(self, api_key: str, *args: str, log_name: str = "agent.log") -> ChildProcess:
        """An agent of this coordinator, started through the CLI with ``args`` added.

        Its ``/health`` is off unless ``args`` ask for it: two agents on one host would both
        want the default port. The key goes in the environment, never on a command line that
        every local user can read in ``ps``.
        """
        command = ["agent", "--server-url", self.url, "--health-port", "0", *args]
        env = {**self.env, "TASKPOST_API_KEY": api_key}
        return ChildProcess(command, env, self.work / log_name).start()

    def stop(self) -> None:
        self.process.stop(signal.SIGTERM)
