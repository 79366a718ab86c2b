"""Addresses and the class each belongs to, which the agent (agent/net/addresses.py) and the
coordinator (server/outbound.py) must both give: None for a public address."""

from __future__ import annotations

ADDRESS_CLASSES: dict[str, str | None] = {
    "10.1.2.3": "a private",
    "172.16.0.9": "a private",
    "192.168.1.1": "a private",
    "127.0.0.1": "a loopback",
    "169.254.169.254": "a link-local",
    "100.64.0.1": "a shared (carrier-grade NAT)",
    "0.0.0.0": "an unspecified",
    "224.0.0.1": "a multicast",
    "240.0.0.1": "a reserved",
    "::1": "a loopback",
    "::": "an unspecified",
    "fe80::1": "a link-local",
    "fec0::1": "a site-local",
    "fc00::1": "a private",
    "ff02::1": "a multicast",
    "::ffff:10.0.0.1": "a private",
    "::ffff:127.0.0.1": "a loopback",
    "2002:a00:1::": "a private",  # 6to4 of 10.0.0.1
    "64:ff9b::a9fe:a9fe": "a link-local",  # NAT64 of 169.254.169.254
    "93.184.216.34": None,
    "2606:2800:220:1:248:1893:25c8:1946": None,
    "::ffff:93.184.216.34": None,
}
