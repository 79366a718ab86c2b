"""The webpage handler against pages served on 127.0.0.1; sockets may reach 127.0.0.0/8 only."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from taskpost.agent.handlers.base import CancelReason, HandlerError
from taskpost.agent.handlers.webpage import WebpageHandler
from taskpost.agent.net.addresses import ALLOW_ALL, AddressPolicy, parse_networks
from taskpost.agent.settings import AgentSettings
from taskpost.launch import free_port
from tests.agent.handlers.conftest import RecordingContext
from tests.agent.net.conftest import StubResolver
from tests.agent.net.conftest import _loopback_sockets_only as _loopback_sockets_only  # autouse
from tests.support.page_server import Answer, PageServer, html, page_server
from tests.support.pages import ARTICLE, BOILERPLATE, MAIN_TEXT, ROBOTS

pytest.importorskip("trafilatura", reason="needs taskpost[web]")

Run = Callable[..., tuple[RecordingContext, dict[str, Any]]]


@pytest.fixture
def server() -> Iterator[PageServer]:
    with page_server() as running:
        running.add("/robots.txt", Answer(200, {"Content-Type": "text/plain"}, ROBOTS.encode()))
        running.add("/news/lighthouse", html(ARTICLE))
        running.add("/members/lighthouse", html(ARTICLE))
        running.redirect("/old", "/news/lighthouse")
        yield running


@pytest.fixture
def run(make_media_ctx: Callable[..., RecordingContext]) -> Run:
    def run_job(
        url: str,
        policy: AddressPolicy = ALLOW_ALL,
        robots_setting: bool = True,
        cancelled: bool = False,
        **params: Any,
    ) -> tuple[RecordingContext, dict[str, Any]]:
        ctx = make_media_ctx(None, {"url": url, **params}, task_type="webpage")
        ctx.url_policy = policy
        if cancelled:
            ctx.cancel(CancelReason.CANCEL_REQUESTED)
        handler = WebpageHandler()
        settings = AgentSettings(
            server_url="http://c", api_key="k", webpage_robots=robots_setting, _env_file=None
        )  # type: ignore[call-arg]
        handler.setup(settings)
        return ctx, handler.run(ctx)

    return run_job


def failure(call: Callable[[], Any]) -> HandlerError:
    with pytest.raises(HandlerError) as caught:
        call()
    return caught.value


def test_main_text_and_metadata_of_a_page(server: PageServer, run: Run) -> None:
    ctx, result = run(server.url("/old"))
    assert MAIN_TEXT in result["text"]
    assert not [word for word in BOILERPLATE if word in result["text"]]
    assert result["title"] == "The last lighthouse keepers"
    assert (result["author"], result["date"], result["language"]) == ("Ada Fields", "2024-03-05", "en-GB")
    assert result["final_url"] == server.url("/news/lighthouse") and result["url"] == server.url("/old")
    assert result["size"] == len(ARTICLE.encode()) and result["chars"] == len(result["text"])
    markdown = (ctx.output_dir / "page.md").read_text()
    assert "## Winter storms" in markdown and "- Oil lamps until the war" in markdown
    assert not [word for word in BOILERPLATE if word in markdown]
    assert MAIN_TEXT in (ctx.output_dir / "page.txt").read_text()
    meta = json.loads((ctx.output_dir / "metadata.json").read_text())
    assert meta["title"] == result["title"] and "text" not in meta
    assert server.requests[0][0] == "/robots.txt" and {ua for _, _, ua in server.requests} == {"taskpost"}
    assert ctx.reports[-1] == (1.0, "done")


def test_robots_txt_is_honoured_unless_turned_off(server: PageServer, run: Run) -> None:
    error = failure(lambda: run(server.url("/members/lighthouse")))
    assert (error.kind, error.retryable) == ("robots_disallowed", False)
    assert "robots.txt" in error.message
    assert [path for path, _, _ in server.requests] == ["/robots.txt"]
    assert MAIN_TEXT in run(server.url("/members/lighthouse"), respect_robots=False)[1]["text"]
    assert MAIN_TEXT in run(server.url("/members/lighthouse"), robots_setting=False)[1]["text"]
    error = failure(lambda: run(server.url("/members/lighthouse"), robots_setting=False, respect_robots=True))
    assert error.kind == "robots_disallowed"


def test_a_site_without_robots_txt_allows_everything(run: Run) -> None:
    with page_server() as bare:
        bare.add("/a", html(ARTICLE))
        assert run(bare.url("/a"))[1]["title"] == "The last lighthouse keepers"
        assert [path for path, _, _ in bare.requests] == ["/robots.txt", "/a"]


def test_private_addresses_are_refused_without_the_flag(server: PageServer, run: Run) -> None:
    error = failure(lambda: run(server.url("/news/lighthouse"), policy=AddressPolicy()))
    assert (error.kind, error.retryable) == ("unsafe_address", False)
    assert "127.0.0.1, a loopback address" in error.message and "--allow-private-urls" in error.message
    assert server.requests == []


def test_a_redirect_to_an_internal_name_is_refused(server: PageServer, run: Run) -> None:
    resolver = StubResolver({"internal.test": ["10.1.2.3"]})
    policy = AddressPolicy(allowed_networks=parse_networks(["127.0.0.1/32"]), resolver=resolver)
    server.redirect("/away", f"http://internal.test:{server.port}/news/lighthouse")
    error = failure(lambda: run(server.url("/away"), policy=policy, respect_robots=False))
    assert error.kind == "unsafe_address" and "internal.test resolves to 10.1.2.3" in error.message


@pytest.mark.parametrize(
    ("path", "answer", "params", "kind", "retryable"),
    [
        ("/doc.pdf", Answer(200, {"Content-Type": "application/pdf"}, b"%PDF-1.4"), {}, "not_html", False),
        ("/raw", Answer(200, {}, b"\x00\x01binary"), {}, "not_html", False),
        ("/big", html(ARTICLE * 20), {"max_size_mb": 0.001}, "too_large", False),
        ("/empty", html("<html><body></body></html>"), {}, "no_content", False),
        ("/gone", Answer(404), {}, "http_error", False),
        ("/busy", Answer(503), {}, "http_error", True),
        ("/loop", Answer(302, {"Location": "/loop"}), {"max_redirects": 2}, "http_error", False),
        ("/ftp", Answer(302, {"Location": "ftp://127.0.0.1/a"}), {}, "bad_url", False),
    ],
)
def test_bad_pages(
    server: PageServer,
    run: Run,
    path: str,
    answer: Answer,
    params: dict[str, Any],
    kind: str,
    retryable: bool,
) -> None:
    server.add(path, answer)
    error = failure(lambda: run(server.url(path), **params))
    assert (error.kind, error.retryable) == (kind, retryable), error.message


@pytest.mark.parametrize(
    ("params", "kind"),
    [
        ({"url": "ftp://example.org/a"}, "bad_url"),
        ({"url": "not a url"}, "bad_url"),
        ({"url": "http://127.0.0.1/", "max_redirects": -1}, "bad_params"),
        ({"url": "http://127.0.0.1/", "surprise": 1}, "bad_params"),
        ({"url": "http://127.0.0.1/", "max_size_mb": 51}, "bad_params"),
    ],
)
def test_bad_params(run: Run, params: dict[str, Any], kind: str) -> None:
    url = params.pop("url")
    error = failure(lambda: run(url, **params))
    assert (error.kind, error.retryable) == (kind, False)


def test_an_unreachable_server_is_a_retryable_network_error(run: Run) -> None:
    error = failure(lambda: run(f"http://127.0.0.1:{free_port()}/a"))
    assert (error.kind, error.retryable) == ("network", True)


def test_a_cancelled_task_stops_during_the_download(server: PageServer, run: Run) -> None:
    error = failure(lambda: run(server.url("/news/lighthouse"), cancelled=True, respect_robots=False))
    assert error.kind == "cancelled"


def test_a_robots_txt_trickling_in_stops_at_timeout_s(server: PageServer, run: Run) -> None:
    trickle = Answer(200, {"Content-Type": "text/plain"}, b"User-agent: *\nAllow: /\n" * 2, trickle_s=0.05)
    server.add("/robots.txt", trickle)  # about 2.4 s in all, one byte at a time
    started = time.monotonic()
    error = failure(lambda: run(server.url("/news/lighthouse"), timeout_s=0.5))
    assert (error.kind, error.retryable) == ("network", True), error.message
    assert "robots.txt took longer than timeout_s" in error.message
    assert time.monotonic() - started < 1.5
    assert [path for path, _, _ in server.requests] == ["/robots.txt"]


def test_a_cancel_stops_reading_robots_txt(server: PageServer, run: Run) -> None:
    error = failure(lambda: run(server.url("/news/lighthouse"), cancelled=True))
    assert error.kind == "cancelled" and "robots.txt" in error.message
    assert [path for path, _, _ in server.requests] == ["/robots.txt"]


def test_a_robots_txt_redirected_away_from_http_allows_the_page(server: PageServer, run: Run) -> None:
    server.redirect("/robots.txt", "ftp://127.0.0.1/robots.txt")
    assert run(server.url("/members/lighthouse"))[1]["title"] == "The last lighthouse keepers"
    assert [path for path, _, _ in server.requests] == ["/robots.txt", "/members/lighthouse"]


def test_the_page_is_parsed_once(monkeypatch: pytest.MonkeyPatch) -> None:
    import trafilatura

    from taskpost.agent.media.web_text import extract_page

    url = "http://127.0.0.1/news/lighthouse"
    expected_markdown = trafilatura.extract(ARTICLE, output_format="markdown", url=url)
    expected_text = trafilatura.extract(ARTICLE, output_format="txt", url=url)
    assert expected_markdown is not None and expected_text is not None
    parses: list[object] = []
    load_html = trafilatura.load_html

    def counting(body: Any, *args: Any, **kwargs: Any) -> Any:
        parses.append(body)
        return load_html(body, *args, **kwargs)

    monkeypatch.setattr(trafilatura, "load_html", counting)
    found = extract_page(ARTICLE.encode(), url)
    assert found is not None and len(parses) == 1
    assert (found.markdown, found.text) == (expected_markdown.strip(), expected_text.strip())
    assert (found.title, found.language) == ("The last lighthouse keepers", "en-GB")
