"""Which addresses a job's URL may reach: the agent must not be a way into the network it runs in.

``AddressPolicy.check_host`` resolves a host once (with an injectable ``Resolver``) and refuses it
when **any** of its addresses is private, loopback, link-local, unspecified, multicast, reserved,
shared (carrier-grade NAT) or otherwise not public, including an IPv6 address that carries such an
IPv4 one (IPv4-mapped, 6to4, NAT64). The caller then connects to the addresses it returned, never
to a second lookup, so a name that re-resolves to an internal address (DNS rebinding) gains nothing.
``allow_private`` (``--allow-private-urls``) lifts the rule; ``allowed_networks``
(``TASKPOST_URL_ALLOW_NETWORKS``) lifts it for some networks only.

The rules mirror the coordinator's webhook rules (server/outbound.py); the agent does not import
server code, so tests/support/address_vectors.py holds the cases both must agree on.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from taskpost.agent.handlers.base import HandlerError

if TYPE_CHECKING:
    from taskpost.agent.settings import AgentSettings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], Sequence[str]]
"""Host and port to the IP addresses (text) a connection may go to; raises ``OSError`` if none."""

_SHARED = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_DEFAULT_PORTS = {"http": 80, "https": 443}
ALLOW_HINT = (
    "start the agent with --allow-private-urls (TASKPOST_ALLOW_PRIVATE_URLS=true) or add the network "
    "to TASKPOST_URL_ALLOW_NETWORKS"
)


class UnsafeAddress(HandlerError):
    """A URL's host is, or resolves to, an address the agent may not reach. Never retried."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=False, kind="unsafe_address")


def system_resolver(host: str, port: int) -> list[str]:
    """The addresses the operating system's resolver gives for ``host`` (getaddrinfo)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
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
    """The class of a non-public address (``"a loopback"``, ...), or None for a public one."""
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


def parse_address(text: str) -> IPAddress:
    """An address as a resolver writes it; an IPv6 zone (``fe80::1%eth0``) is dropped."""
    return ipaddress.ip_address(text.split("%", 1)[0])


@dataclass(frozen=True)
class AddressPolicy:
    """What hosts this agent's jobs may fetch from (see the module's docstring)."""

    allow_private: bool = False
    allowed_networks: tuple[IPNetwork, ...] = ()
    resolver: Resolver = field(default=system_resolver, compare=False)

    @classmethod
    def from_settings(cls, settings: AgentSettings) -> AddressPolicy:
        """The policy ``--allow-private-urls`` and ``TASKPOST_URL_ALLOW_NETWORKS`` ask for."""
        return cls(
            allow_private=settings.allow_private_urls,
            allowed_networks=parse_networks(settings.url_allow_networks),
        )

    def problem(self, ip: IPAddress) -> str | None:
        """Why ``ip`` may not be reached under this policy, or None."""
        if self.allow_private:
            return None
        candidates = [ip] + [embedded for embedded in [embedded_ipv4(ip)] if embedded is not None]
        if any(candidate in network for candidate in candidates for network in self.allowed_networks):
            return None
        return address_problem(ip)

    def check_host(self, host: str, port: int) -> list[IPAddress]:
        """The addresses to connect to for ``host``: all of them pass, else ``UnsafeAddress``.

        A literal address is not resolved. Raises ``OSError`` when the name does not resolve."""
        try:
            addresses = [parse_address(host.strip("[]"))]
        except ValueError:
            addresses = [parse_address(text) for text in self.resolver(host, port)]
            if not addresses:
                raise OSError(f"{host} resolves to no address") from None
        for ip in addresses:
            problem = self.problem(ip)
            if problem is not None:
                via = "" if str(ip) == host.strip("[]") else f"{host} resolves to "
                embedded = embedded_ipv4(ip)
                carries = f" (which carries {embedded})" if embedded is not None else ""
                raise UnsafeAddress(
                    f"refused to connect: {via}{ip}{carries}, {problem} address; the agent fetches only "
                    f"public addresses ({ALLOW_HINT})"
                )
        return addresses

    def check_url(self, url: str) -> list[IPAddress]:
        """``check_host`` for the host and port of the http(s) ``url`` (already checked for shape)."""
        parts = urlsplit(url)
        port = parts.port or _DEFAULT_PORTS.get(parts.scheme.lower(), 80)
        return self.check_host(parts.hostname or "", port)


def parse_networks(texts: Iterable[str]) -> tuple[IPNetwork, ...]:
    """CIDR networks (``10.0.5.0/24``; a bare address is one host); ``ValueError`` names a bad one."""
    networks: list[IPNetwork] = []
    for text in texts:
        try:
            networks.append(ipaddress.ip_network(text.strip(), strict=False))
        except ValueError as exc:
            raise ValueError(f"url_allow_networks: {text!r} is not a network (CIDR): {exc}") from exc
    return tuple(networks)


ALLOW_ALL = AddressPolicy(allow_private=True)
"""Every address allowed: what ``--allow-private-urls`` gives (tests that fetch from 127.0.0.1)."""
