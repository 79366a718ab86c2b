"""Outbound URL rules (server/outbound.py): which webhook URLs the coordinator may call, and that
a delivery connects to the address that was checked, not to a fresh DNS answer."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from collections.abc import Sequence
from pathlib import Path

import httpcore
import httpx
import pytest

from taskpost.server import outbound
from taskpost.server.errors import InvalidParams
from tests.support.address_vectors import ADDRESS_CLASSES
from tests.support.webhook_receiver import receiving

pytestmark = pytest.mark.anyio

DNS = {
    "hooks.example.com": ["93.184.216.34"],
    "internal.example": ["10.0.0.7"],
    "localhost": ["127.0.0.1", "::1"],
    "cgnat.example": ["100.64.3.4"],
    "mixed.example": ["93.184.216.34", "192.168.1.10"],
    "v6.example": ["2606:4700:4700::1111"],
}


async def stub_resolver(host: str, port: int) -> Sequence[str]:
    if host not in DNS:
        raise OSError(f"[Errno -2] Name or service not known: {host}")
    return DNS[host]


async def no_dns(host: str, port: int) -> Sequence[str]:
    raise AssertionError(f"a literal address must not be resolved (asked for {host})")


async def check(url: str, *, allow_private: bool = False) -> outbound.Target:
    return await outbound.check_url(
        url, field="webhook_url", allow_private=allow_private, resolver=stub_resolver
    )


@pytest.mark.parametrize(
    ("url", "address", "kind"),
    [
        ("http://127.0.0.1:8080/hook", "127.0.0.1", "loopback"),
        ("http://10.1.2.3/hook", "10.1.2.3", "private"),
        ("http://169.254.169.254/latest/meta-data/", "169.254.169.254", "link-local"),
        ("http://[::1]:9000/hook", "::1", "loopback"),
        ("http://[::ffff:10.0.0.1]/hook", "10.0.0.1", "private"),
        ("http://[64:ff9b::a00:1]/hook", "10.0.0.1", "private"),
        ("http://[2002:c0a8:0101::1]/hook", "192.168.1.1", "private"),
        ("http://[fe80::1]/hook", "fe80::1", "link-local"),
        ("http://[fd00::5]/hook", "fd00::5", "private"),
        ("http://0.0.0.0:8000/", "0.0.0.0", "unspecified"),
        ("http://224.0.0.251/", "224.0.0.251", "multicast"),
        ("http://100.64.0.9/", "100.64.0.9", "carrier-grade NAT"),
        ("http://240.0.0.1/", "240.0.0.1", "reserved"),
        ("http://internal.example/hook", "10.0.0.7", "private"),
        ("https://localhost/hook", "127.0.0.1", "loopback"),
        ("https://cgnat.example/hook", "100.64.3.4", "carrier-grade NAT"),
        ("https://mixed.example/hook", "192.168.1.10", "private"),
    ],
)
async def test_non_public_addresses_are_refused_naming_the_field(url: str, address: str, kind: str) -> None:
    with pytest.raises(InvalidParams) as caught:
        await check(url)
    message = caught.value.message
    assert message.startswith("webhook_url points at")
    assert address in message and kind in message
    assert "TASKPOST_ALLOW_PRIVATE_WEBHOOKS" in message
    assert caught.value.details == {"field": "webhook_url"}


async def test_a_name_is_named_beside_the_private_address_it_resolves_to() -> None:
    with pytest.raises(InvalidParams, match=r"10\.0\.0\.7 \(the address of 'internal\.example'\)"):
        await check("http://internal.example/hook")


async def test_literal_addresses_are_checked_without_dns() -> None:
    with pytest.raises(InvalidParams, match="loopback"):
        await outbound.check_url(
            "http://127.0.0.1/", field="webhook_url", allow_private=False, resolver=no_dns
        )
    target = await outbound.check_url(
        "https://93.184.216.34/hook", field="webhook_url", allow_private=False, resolver=no_dns
    )
    assert target.addresses == ("93.184.216.34",)


async def test_public_addresses_are_allowed_and_kept_for_the_connection() -> None:
    target = await check("https://hooks.example.com/taskpost?x=1")
    assert target.addresses == ("93.184.216.34",)
    assert target.port == 443
    assert (await check("http://v6.example:8080/")).addresses == ("2606:4700:4700::1111",)


async def test_allow_private_lets_every_address_through() -> None:
    assert (await check("http://internal.example/hook", allow_private=True)).addresses == ("10.0.0.7",)
    assert (await check("http://[::1]:9000/", allow_private=True)).addresses == ("::1",)


@pytest.mark.parametrize(
    "url",
    [
        "ftp://hooks.example.com/hook",
        "file:///etc/passwd",
        "gopher://hooks.example.com/",
        "javascript:alert(1)",
        "hooks.example.com/hook",
        "http:///no-host",
    ],
)
async def test_only_http_and_https_urls_with_a_host(url: str) -> None:
    with pytest.raises(InvalidParams, match="webhook_url must be an http or https URL with a host"):
        await check(url, allow_private=True)


async def test_a_host_that_does_not_resolve_is_refused() -> None:
    with pytest.raises(InvalidParams, match=r"webhook_url: the host 'nowhere\.example' does not resolve"):
        await check("https://nowhere.example/hook")


async def test_the_submit_check_resolves_nothing_when_private_addresses_are_allowed() -> None:
    await outbound.refuse_unsafe_url(
        "http://unknown.internal/hook", field="webhook_url", allow_private=True, resolver=no_dns
    )
    with pytest.raises(InvalidParams, match="http or https"):
        await outbound.refuse_unsafe_url("ftp://a/", field="webhook_url", allow_private=True, resolver=no_dns)


async def test_refuse_unsafe_url_is_the_submit_check() -> None:
    await outbound.refuse_unsafe_url(
        "https://hooks.example.com/", field="webhook_url", allow_private=False, resolver=stub_resolver
    )
    with pytest.raises(InvalidParams, match="private"):
        await outbound.refuse_unsafe_url(
            "https://internal.example/", field="webhook_url", allow_private=False, resolver=stub_resolver
        )


async def test_post_connects_to_the_checked_address_and_sends_the_name_as_host() -> None:
    """The name below resolves nowhere: the request can only arrive through the pinned address."""
    with receiving([202]) as receiver:
        port = int(receiver.url.split(":")[2].split("/")[0])
        target = outbound.Target(
            url=httpx.URL(f"http://rebinding.example:{port}/hook?n=1"),
            port=port,
            addresses=("127.0.0.1",),
        )
        status = await outbound.post(
            target,
            b'{"ok":true}',
            {"Content-Type": "application/json"},
            timeout_s=5,
            ssl_context=ssl.create_default_context(),
        )
        assert status == 202
        [delivery] = await receiver.wait_for(1)
    assert delivery.path == "/hook?n=1"
    assert delivery.headers["Host"] == f"rebinding.example:{port}"
    assert delivery.body == b'{"ok":true}'


async def test_post_gives_up_after_its_timeout() -> None:
    with receiving([200]) as receiver:
        receiver.hold.clear()
        target = await outbound.check_url(receiver.url, field="webhook_url", allow_private=True)
        with pytest.raises(TimeoutError):
            await outbound.post(target, b"{}", {}, timeout_s=0.3, ssl_context=ssl.create_default_context())


def tls_receiver_context(tmp_path: Path, name: str) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A server context with a self-signed certificate for ``name``, and a client one trusting it."""
    x509 = pytest.importorskip("cryptography.x509", reason="the dev extra's cryptography makes certificates")
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(cert_file, key_file)
    return server, ssl.create_default_context(cafile=str(cert_file))


async def test_https_is_pinned_to_the_address_and_verified_for_the_name(tmp_path: Path) -> None:
    server, client = tls_receiver_context(tmp_path, "hooks.example")
    with receiving([200], tls=server) as receiver:
        target = outbound.Target(
            url=httpx.URL(f"https://hooks.example:{receiver.port}/hook"),
            port=receiver.port,
            addresses=("127.0.0.1",),
        )
        assert await outbound.post(target, b"{}", {}, timeout_s=5, ssl_context=client) == 200
        assert receiver.server_names == ["hooks.example"]
        # The certificate is for hooks.example, not for the address connected to: another
        # name on the same address fails verification.
        other = outbound.Target(
            url=httpx.URL(f"https://other.example:{receiver.port}/hook"),
            port=receiver.port,
            addresses=("127.0.0.1",),
        )
        with pytest.raises(httpcore.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            await outbound.post(other, b"{}", {}, timeout_s=5, ssl_context=client)
    assert len(receiver.deliveries) == 1


@pytest.mark.parametrize(("address", "kind"), sorted(ADDRESS_CLASSES.items()))
async def test_the_coordinator_classes_addresses_as_the_agent_does(address: str, kind: str | None) -> None:
    assert outbound.address_problem(ipaddress.ip_address(address)) == kind
