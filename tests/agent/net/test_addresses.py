"""The address rules on resolved addresses, with a stub resolver: no connection is ever made."""

from __future__ import annotations

import ipaddress
import socket

import pytest

from taskpost.agent.net.addresses import AddressPolicy, UnsafeAddress, address_problem, parse_networks
from taskpost.agent.settings import AgentSettings
from taskpost.server.outbound import address_problem as coordinator_address_problem
from tests.agent.net.conftest import StubResolver
from tests.support.address_vectors import ADDRESS_CLASSES

NAMES = {
    "ten.test": ["10.1.2.3"],
    "one72.test": ["172.16.0.9"],
    "one92.test": ["192.168.1.1"],
    "meta.test": ["169.254.169.254"],
    "six.test": ["::1"],
    "linklocal6.test": ["fe80::1%eth0"],
    "mapped.test": ["::ffff:10.0.0.1"],
    "cgnat.test": ["100.64.0.1"],
    "public.test": ["93.184.216.34"],
    "mixed.test": ["93.184.216.34", "10.0.0.1"],
    "empty.test": [],
}


@pytest.mark.parametrize(("address", "expected"), sorted(ADDRESS_CLASSES.items()))
def test_agent_and_coordinator_classify_addresses_alike(address: str, expected: str | None) -> None:
    ip = ipaddress.ip_address(address)
    assert address_problem(ip) == expected
    assert coordinator_address_problem(ip) == expected


@pytest.mark.parametrize(
    ("host", "address", "problem"),
    [
        ("ten.test", "10.1.2.3", "a private"),
        ("one72.test", "172.16.0.9", "a private"),
        ("one92.test", "192.168.1.1", "a private"),
        ("meta.test", "169.254.169.254", "a link-local"),
        ("six.test", "::1", "a loopback"),
        ("linklocal6.test", "fe80::1", "a link-local"),
        ("mapped.test", "::ffff:a00:1 (which carries 10.0.0.1)", "a private"),
        ("cgnat.test", "100.64.0.1", "a shared (carrier-grade NAT)"),
        ("mixed.test", "10.0.0.1", "a private"),
    ],
)
def test_a_name_with_any_non_public_address_is_refused(host: str, address: str, problem: str) -> None:
    resolver = StubResolver(NAMES)
    with pytest.raises(UnsafeAddress) as caught:
        AddressPolicy(resolver=resolver).check_host(host, 80)
    error = caught.value
    assert (error.kind, error.retryable) == ("unsafe_address", False)
    assert f"{host} resolves to {address}, {problem} address" in error.message
    assert "--allow-private-urls" in error.message and "TASKPOST_URL_ALLOW_NETWORKS" in error.message
    assert resolver.calls == [host]


def test_a_public_name_passes_with_the_addresses_to_connect_to() -> None:
    policy = AddressPolicy(resolver=StubResolver(NAMES))
    assert policy.check_host("public.test", 443) == [ipaddress.ip_address("93.184.216.34")]
    assert policy.check_url("https://public.test/a?b") == [ipaddress.ip_address("93.184.216.34")]


def test_literal_addresses_are_checked_without_a_lookup() -> None:
    resolver = StubResolver({})
    policy = AddressPolicy(resolver=resolver)
    with pytest.raises(UnsafeAddress, match=r"refused to connect: 127\.0\.0\.1, a loopback address"):
        policy.check_url("http://127.0.0.1:8080/")
    with pytest.raises(UnsafeAddress, match="::1, a loopback"):
        policy.check_url("http://[::1]/")
    assert policy.check_url("http://93.184.216.34/") == [ipaddress.ip_address("93.184.216.34")]
    assert resolver.calls == []


def test_names_that_do_not_resolve_raise_os_errors() -> None:
    policy = AddressPolicy(resolver=StubResolver(NAMES))
    with pytest.raises(socket.gaierror):
        policy.check_host("nowhere.test", 80)
    with pytest.raises(OSError, match="no address"):
        policy.check_host("empty.test", 80)


def test_allow_private_lets_every_address_through() -> None:
    policy = AddressPolicy(allow_private=True, resolver=StubResolver(NAMES))
    for host in ("ten.test", "meta.test", "six.test", "mixed.test", "mapped.test"):
        assert policy.check_host(host, 80)


def test_allowed_networks_open_only_themselves() -> None:
    names = {"inside.test": ["10.0.5.7"], "mapped.test": ["::ffff:10.0.5.8"], "next.test": ["10.0.6.1"]}
    policy = AddressPolicy(allowed_networks=parse_networks(["10.0.5.0/24"]), resolver=StubResolver(names))
    assert policy.check_host("inside.test", 80) == [ipaddress.ip_address("10.0.5.7")]
    assert policy.check_host("mapped.test", 80)
    with pytest.raises(UnsafeAddress, match=r"10\.0\.6\.1, a private"):
        policy.check_host("next.test", 80)


def test_policy_from_settings() -> None:
    base = {"server_url": "http://c", "api_key": "k", "_env_file": None}
    assert AgentSettings(**base).allow_private_urls is False  # type: ignore[arg-type]
    assert AddressPolicy.from_settings(AgentSettings(**base)) == AddressPolicy()  # type: ignore[arg-type]
    settings = AgentSettings(**base, allow_private_urls=True, url_allow_networks="127.0.0.1/32, fd00::/8")  # type: ignore[arg-type]
    policy = AddressPolicy.from_settings(settings)
    assert policy.allow_private
    assert policy.allowed_networks == (ipaddress.ip_network("127.0.0.1/32"), ipaddress.ip_network("fd00::/8"))
    with pytest.raises(ValueError, match=r"'10\.0\.0\.300' is not a network"):
        parse_networks(["10.0.0.300"])


def test_task_contexts_refuse_private_addresses_by_default(tmp_path: object) -> None:
    from pathlib import Path

    from taskpost.agent.handlers.base import TaskContext

    ctx = TaskContext(job_id="j", task_type="webpage", attempt=1, params={}, inputs={}, work_dir=Path("."))
    assert ctx.url_policy == AddressPolicy()
    with pytest.raises(UnsafeAddress):
        ctx.url_policy.check_url("http://127.0.0.1/")
