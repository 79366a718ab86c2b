"""Fixtures of the URL-safety tests: a stub resolver, and sockets that may reach 127.0.0.0/8 only.

In this sandbox some private addresses answer, so a refused connection proves nothing: every
connect in these tests asserts a loopback address first, and a lax guard fails loudly instead
of sending a packet anywhere else."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable, Sequence
from typing import Any

import httpcore
import pytest

LOOPBACK = ipaddress.ip_network("127.0.0.0/8")


def assert_loopback(host: str) -> None:
    assert ipaddress.ip_address(host) in LOOPBACK, f"a test tried to connect to {host}"


class StubResolver:
    """Test names to fixed addresses; records each lookup; unknown names do not resolve."""

    def __init__(self, names: dict[str, Sequence[str]]) -> None:
        self.names = names
        self.calls: list[str] = []

    def __call__(self, host: str, port: int) -> Sequence[str]:
        self.calls.append(host)
        if host not in self.names:
            raise socket.gaierror(socket.EAI_NONAME, f"{host}: unknown test name")
        return self.names[host]


class LoopbackOnlyBackend(httpcore.NetworkBackend):
    """httpcore's sync backend that connects only to 127.0.0.0/8, recording each address."""

    def __init__(self) -> None:
        self.inner = httpcore.SyncBackend()
        self.connected: list[str] = []

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        assert_loopback(host)
        self.connected.append(host)
        return self.inner.connect_tcp(host, port, timeout, local_address, socket_options)

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        raise AssertionError("no unix sockets in these tests")

    def sleep(self, seconds: float) -> None:
        self.inner.sleep(seconds)


@pytest.fixture(autouse=True)
def _loopback_sockets_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every socket connect in these tests (httpx, yt-dlp) must go to 127.0.0.0/8."""
    real_connect = socket.socket.connect

    def connect(self: socket.socket, address: Any) -> None:
        if self.family in (socket.AF_INET, socket.AF_INET6):
            assert_loopback(address[0])
        real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    real_getaddrinfo = socket.getaddrinfo

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        # A lookup of a test name would send a DNS query: only literal addresses resolve here.
        ipaddress.ip_address(str(host).strip("[]").split("%", 1)[0])
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
