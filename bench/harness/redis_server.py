"""A private redis-server for RQ and Celery: a free 127.0.0.1 port, no persistence, its own folder."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from taskpost.launch import free_port, wait_until

if TYPE_CHECKING:
    from redis import Redis


@dataclass(frozen=True)
class RedisServer:
    port: int
    pid: int

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> Redis:
        """A new connection (redis-py is imported here: it is optional for the rest of the harness)."""
        from redis import Redis

        return Redis(host="127.0.0.1", port=self.port)

    def flush(self) -> None:
        with self.client() as redis:
            redis.flushall()


def _answers(server: RedisServer) -> bool:
    try:
        with server.client() as redis:
            return bool(redis.ping())
    except Exception:
        return False


@contextmanager
def private_redis() -> Iterator[RedisServer]:
    """Start redis-server, yield it, and stop it (SIGTERM, then SIGKILL) however the block ends."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is not on PATH")
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="harness-redis-") as folder:
        command = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        command += ["--dir", folder, "--daemonize", "no"]
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        server = RedisServer(port, process.pid)
        try:
            wait_until(lambda: _answers(server), 15, "redis-server", interval_s=0.02)
            yield server
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
