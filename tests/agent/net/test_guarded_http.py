"""The guarded client against a real server on 127.0.0.1, through a loopback-asserting backend."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from taskpost.agent.handlers.base import HandlerError
from taskpost.agent.media.download import Limits
from taskpost.agent.media.fetch import fetch_media
from taskpost.agent.net.addresses import ALLOW_ALL, AddressPolicy, UnsafeAddress, parse_networks
from taskpost.agent.net.guarded_http import guarded_client
from tests.agent.net.conftest import LoopbackOnlyBackend, StubResolver
from tests.support.page_server import PageServer, html, page_server


@pytest.fixture
def server() -> Iterator[PageServer]:
    with page_server() as running:
        running.add("/page", html("<p>hello</p>"))
        yield running


def get(
    policy: AddressPolicy, url: str, backend: LoopbackOnlyBackend, max_redirects: int = 5
) -> httpx.Response:
    with guarded_client(policy, timeout_s=5, max_redirects=max_redirects, backend=backend) as client:
        return client.get(url)


def test_loopback_is_fetched_with_the_flag_and_refused_without(server: PageServer) -> None:
    backend = LoopbackOnlyBackend()
    response = get(ALLOW_ALL, server.url("/page"), backend)
    assert (response.status_code, response.text) == (200, "<p>hello</p>")
    assert server.requests[-1][2] == "taskpost"
    assert backend.connected == ["127.0.0.1"]

    with pytest.raises(UnsafeAddress, match=r"127\.0\.0\.1, a loopback address") as caught:
        get(AddressPolicy(), server.url("/page"), backend)
    assert (caught.value.kind, caught.value.retryable) == ("unsafe_address", False)
    assert backend.connected == ["127.0.0.1"], "no connection for the refused request"


def test_every_redirect_hop_is_checked_before_connecting(server: PageServer) -> None:
    resolver = StubResolver({"internal.test": ["10.1.2.3"], "meta.test": ["169.254.169.254"]})
    policy = AddressPolicy(allowed_networks=parse_networks(["127.0.0.1/32"]), resolver=resolver)
    server.redirect("/to-internal", f"http://internal.test:{server.port}/page")
    server.redirect("/to-meta", "http://meta.test/latest/meta-data/")
    backend = LoopbackOnlyBackend()
    with pytest.raises(UnsafeAddress, match=r"internal\.test resolves to 10\.1\.2\.3, a private address"):
        get(policy, server.url("/to-internal"), backend)
    with pytest.raises(UnsafeAddress, match=r"meta\.test resolves to 169\.254\.169\.254, a link-local"):
        get(policy, server.url("/to-meta"), backend)
    assert backend.connected == ["127.0.0.1", "127.0.0.1"], "only the allowed first hops connected"
    assert [path for path, _, _ in server.requests] == ["/to-internal", "/to-meta"]


def test_a_hop_connects_to_the_address_it_checked(server: PageServer) -> None:
    resolver = StubResolver({"local.test": ["127.0.0.1"]})
    policy = AddressPolicy(allowed_networks=parse_networks(["127.0.0.0/8"]), resolver=resolver)
    server.redirect("/hop", f"http://local.test:{server.port}/page")
    backend = LoopbackOnlyBackend()
    response = get(policy, server.url("/hop"), backend)
    assert response.status_code == 200 and str(response.url) == f"http://local.test:{server.port}/page"
    assert resolver.calls == ["local.test"], "one lookup per connection, none in a second layer"
    assert backend.connected == ["127.0.0.1", "127.0.0.1"]
    assert server.requests[-1][1] == f"local.test:{server.port}", "the Host header keeps the name"


def test_redirects_are_limited(server: PageServer) -> None:
    for index in range(4):
        server.redirect(f"/loop/{index}", f"/loop/{index + 1}")
    with pytest.raises(httpx.TooManyRedirects):
        get(ALLOW_ALL, server.url("/loop/0"), LoopbackOnlyBackend(), max_redirects=2)
    assert len(server.requests) == 3


def test_proxy_settings_of_the_environment_are_ignored(
    server: PageServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")
    backend = LoopbackOnlyBackend()
    assert get(ALLOW_ALL, server.url("/page"), backend).status_code == 200
    assert server.requests[-1][0] == "/page"


def test_a_name_that_does_not_resolve_is_a_connect_error(server: PageServer) -> None:
    policy = AddressPolicy(resolver=StubResolver({}))
    with pytest.raises(httpx.ConnectError, match=r"nowhere\.test does not resolve"):
        get(policy, "http://nowhere.test/", LoopbackOnlyBackend())


def test_fetch_media_checks_the_link_and_each_hop(server: PageServer, tmp_path: Path) -> None:
    resolver = StubResolver({"internal.test": ["10.1.2.3"]})
    policy = AddressPolicy(allowed_networks=parse_networks(["127.0.0.1/32"]), resolver=resolver)
    server.redirect("/a.mp3", f"http://internal.test:{server.port}/a.mp3")

    def fetch(url: str, policy: AddressPolicy) -> HandlerError:
        with pytest.raises(HandlerError) as caught:
            fetch_media(
                url,
                tmp_path / "download",
                limits=Limits(),
                progress=lambda fraction, message: None,
                is_cancelled=lambda: False,
                logger=logging.getLogger("test"),
                policy=policy,
            )
        return caught.value

    error = fetch(server.url("/a.mp3"), policy)
    assert (error.kind, error.retryable) == ("unsafe_address", False)
    assert "internal.test resolves to 10.1.2.3" in error.message
    error = fetch(server.url("/a.mp3"), AddressPolicy())
    assert (error.kind, error.retryable) == ("unsafe_address", False)
    assert [path for path, _, _ in server.requests] == ["/a.mp3"], "only the allowed first hop was asked"
