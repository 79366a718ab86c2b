"""Rules for URLs the coordinator itself sends requests to (webhooks), and the one way it sends them.

A URL is checked once at submit (``refuse_unsafe_url``) and again before every delivery
(``check_url``): http(s) only, and every address its host resolves to must be public unless
private ones are allowed. ``post`` then connects to the addresses that check saw, never to a
fresh resolution, so a name that re-resolves to an internal address between the check and the
connection (DNS rebinding) cannot redirect the request; TLS still verifies the certificate for
the URL's host name, which is also the Host header and the SNI.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass

import httpcore
import httpx

from taskpost.server.errors import InvalidParams

Resolver = Callable[[str, int], Awaitable[Sequence[str]]]
"""Host and port to the IP addresses (text) a connection may go to."""

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

RESOLVE_TIMEOUT_S = 5.0
_DEFAULT_PORTS = {"http": 80, "https": 443}
_SHARED = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_ALLOW_HINT = "set TASKPOST_ALLOW_PRIVATE_WEBHOOKS=true on the coordinator to allow private addresses"


@dataclass(frozen=True)
class Target:
    """A checked URL: where ``post`` may connect, and what it asks for there."""

    url: httpx.URL
    port: int
    addresses: tuple[str, ...]


async def system_resolver(host: str, port: int) -> Sequence[str]:
    """The addresses the operating system's resolver gives for ``host`` (getaddrinfo)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def embedded_ipv4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one stands for (IPv4-mapped, 6to4, NAT64), which a packet reaches."""
    if not isinstance(ip, ipaddress.IPv6Address):
        return None
    embedded = ip.ipv4_mapped or ip.sixtofour
    if embedded is None and ip in _NAT64:
        embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return embedded


def address_problem(ip: IPAddress) -> str | None:
    """Why the coordinator must not call ``ip`` (``"a loopback"``, ...), or None for a public address."""
    embedded = embedded_ipv4(ip)
    if embedded is not None:
        return address_problem(embedded)
    checks = (
        (ip.is_loopback, "a loopback"),
        (ip.is_unspecified, "an unspecified"),
        (ip.is_link_local, "a link-local"),
        # fec0::/10, deprecated but still routable inside some networks; is_global says True.
        (isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local, "a site-local"),
        (ip.is_multicast, "a multicast"),
        (ip in _SHARED, "a shared (carrier-grade NAT)"),
        (ip.is_reserved, "a reserved"),
        (ip.is_private, "a private"),
        (not ip.is_global, "a non-public"),
    )
    return next((name for matched, name in checks if matched), None)


def _parse(url: str, field: str) -> tuple[httpx.URL, int]:
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, ValueError) as error:
        raise InvalidParams(f"{field} is not a valid URL: {error}", field=field) from error
    if parsed.scheme not in _DEFAULT_PORTS or not parsed.host:
        raise InvalidParams(f"{field} must be an http or https URL with a host", field=field)
    return parsed, parsed.port or _DEFAULT_PORTS[parsed.scheme]


async def _addresses(host: str, port: int, field: str, resolver: Resolver) -> list[IPAddress]:
    try:
        return [ipaddress.ip_address(host)]  # a literal address: no DNS
    except ValueError:
        pass
    try:
        async with asyncio.timeout(RESOLVE_TIMEOUT_S):
            found = await resolver(host, port)
    except (OSError, TimeoutError) as error:
        raise InvalidParams(f"{field}: the host {host!r} does not resolve ({error})", field=field) from error
    addresses = [ipaddress.ip_address(text.split("%", 1)[0]) for text in found]
    if not addresses:
        raise InvalidParams(f"{field}: the host {host!r} resolves to no address", field=field)
    return addresses


async def check_url(url: str, *, field: str, allow_private: bool, resolver: Resolver | None = None) -> Target:
    """The checked ``Target`` of ``url``; ``InvalidParams`` naming ``field`` if it may not be called.

    Every address of the host must pass, not only one: the connection may go to any of them."""
    parsed, port = _parse(url, field)
    addresses = await _addresses(parsed.host, port, field, resolver or system_resolver)
    if not allow_private:
        for ip in addresses:
            problem = address_problem(ip)
            if problem is not None:
                via = "" if str(ip) == parsed.host else f" (the address of {parsed.host!r})"
                embedded = embedded_ipv4(ip)
                if embedded is not None:
                    via += f", which carries {embedded}"
                raise InvalidParams(
                    f"{field} points at {ip}{via}, {problem} address; the coordinator calls only "
                    f"public addresses ({_ALLOW_HINT})",
                    field=field,
                )
    return Target(parsed, port, tuple(str(ip) for ip in addresses))


async def refuse_unsafe_url(
    url: str, *, field: str, allow_private: bool, resolver: Resolver | None = None
) -> None:
    """Raise ``InvalidParams`` naming ``field`` unless ``url`` is one the coordinator may call.

    With ``allow_private`` every address is allowed, so the host is not resolved here (a submit
    does not wait for DNS); each delivery resolves it and connects to what it found."""
    if allow_private:
        _parse(url, field)
        return
    await check_url(url, field=field, allow_private=allow_private, resolver=resolver)


class _PinnedBackend(httpcore.AsyncNetworkBackend):
    """Opens every connection to the checked addresses, in order, whatever host it is asked for."""

    def __init__(self, addresses: Sequence[str]) -> None:
        self._addresses = addresses
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's signature)
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        failure: Exception = httpcore.ConnectError(f"{host} has no checked address")
        for address in self._addresses:
            try:
                return await self._inner.connect_tcp(address, port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as error:
                failure = error
        raise failure

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's signature)
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("webhooks never go to a unix socket")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


async def post(
    target: Target, body: bytes, headers: dict[str, str], *, timeout_s: float, ssl_context: ssl.SSLContext
) -> int:
    """POST ``body`` to ``target`` on one of its checked addresses; the response's status code.

    Redirects are not followed and the response body is not read. Raises ``httpcore`` errors
    (connection, TLS, protocol), and ``TimeoutError`` past ``timeout_s`` in all or in one step."""
    url = httpcore.URL(
        scheme=target.url.raw_scheme, host=target.url.raw_host, port=target.port, target=target.url.raw_path
    )
    extensions = {"timeout": dict.fromkeys(("connect", "read", "write", "pool"), timeout_s)}
    headers = {"Host": target.url.netloc.decode("ascii"), **headers}
    try:
        async with (
            asyncio.timeout(timeout_s),
            httpcore.AsyncConnectionPool(
                ssl_context=ssl_context, network_backend=_PinnedBackend(target.addresses), max_connections=1
            ) as pool,
            pool.stream(
                "POST", url, headers=list(headers.items()), content=body, extensions=extensions
            ) as response,
        ):
            return response.status
    except httpcore.TimeoutException as error:
        raise TimeoutError(str(error)) from error
