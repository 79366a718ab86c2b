"""``fetch_media`` against a local web server: direct links over plain HTTP, pages through yt-dlp."""

from __future__ import annotations

import gc
import logging
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from taskpost.agent.handlers.base import HandlerError
from taskpost.agent.media.download import Downloaded, Limits
from taskpost.agent.media.fetch import fetch_media, is_direct_media
from taskpost.agent.net.addresses import ALLOW_ALL
from taskpost.launch import free_port
from tests.media_fixtures.media_server import MediaServer, audio_page, plain_page, serve

Fetch = Callable[..., Downloaded]


@pytest.fixture(autouse=True)
def _close_leaked_sockets() -> Iterator[None]:
    """yt-dlp leaves a direct link's response for the garbage collector (see test_url_audio.py)."""
    yield
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()


@pytest.fixture
def server(speech_dir: Path) -> Iterator[MediaServer]:
    with serve(speech_dir) as media_server:
        yield media_server


@pytest.fixture
def fetch(tmp_path: Path) -> Fetch:
    """Fetches a URL into a fresh folder, recording progress in ``fetch.reports``."""
    reports: list[tuple[float | None, str]] = []

    def run(url: object, *, max_bytes: int | None = None, cancelled: bool = False) -> Downloaded:
        limits = Limits() if max_bytes is None else Limits(max_bytes=max_bytes)
        return fetch_media(
            url,
            tmp_path / "download",
            limits=limits,
            progress=lambda fraction, message: reports.append((fraction, message)),
            is_cancelled=lambda: cancelled,
            logger=logging.getLogger("test"),
            policy=ALLOW_ALL,
        )

    run.reports = reports  # type: ignore[attr-defined]
    return run


def failure(run: Callable[[], Any]) -> HandlerError:
    with pytest.raises(HandlerError) as caught:
        run()
    return caught.value


@pytest.mark.parametrize(
    ("content_type", "url", "direct"),
    [
        ("audio/mpeg", "http://h/a", True),
        ("video/mp4; codecs=avc1", "http://h/watch", True),
        ("application/octet-stream", "http://h/talk.MP3", True),
        ("", "http://h/talk.wav?sig=1", True),
        ("application/octet-stream", "http://h/download", False),
        ("text/html; charset=utf-8", "http://h/talk.mp3", False),
        ("application/json", "http://h/talk.mp3", False),
    ],
)
def test_content_type_or_extension_decides_direct_media(content_type: str, url: str, direct: bool) -> None:
    assert is_direct_media(content_type, url) is direct


@pytest.mark.media
def test_direct_link_is_streamed_over_plain_http(server: MediaServer, fetch: Fetch) -> None:
    url = server.url("english.wav")
    fetched = fetch(url)
    assert fetched.path.read_bytes() == (server.root / "english.wav").read_bytes()
    assert fetched.path.name == "media.wav"
    meta = fetched.metadata
    assert meta["source_url"] == url and meta["title"] == "english.wav"
    assert meta["content_type"].startswith("audio/") and "extractor" not in meta  # yt-dlp never ran
    assert meta["size"] == fetched.path.stat().st_size and meta["duration_s"] > 1
    fractions = [fraction for fraction, _ in fetch.reports]  # type: ignore[attr-defined]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0


@pytest.mark.media
def test_page_goes_through_yt_dlp(server: MediaServer, fetch: Fetch) -> None:
    pytest.importorskip("yt_dlp", reason="needs taskpost[download]")
    url = server.add_page("episode.html", audio_page("/english.mp3", title="Episode one"))
    fetched = fetch(url)
    assert fetched.metadata["extractor"] is not None and fetched.metadata["title"].startswith("Episode one")
    assert fetched.path.read_bytes() == (server.root / "english.mp3").read_bytes()


@pytest.mark.media
def test_page_without_media_is_unsupported(server: MediaServer, fetch: Fetch) -> None:
    pytest.importorskip("yt_dlp", reason="needs taskpost[download]")
    error = failure(lambda: fetch(server.add_page("about.html", plain_page())))
    assert (error.kind, error.retryable) == ("unsupported_url", False)


@pytest.mark.media
@pytest.mark.parametrize(
    ("status", "kind", "retryable"),
    [
        (404, "not_found", False),
        (410, "not_found", False),
        (403, "http_error", False),
        (503, "network", True),
    ],
)
def test_http_errors_keep_the_url_audio_kinds(
    server: MediaServer, fetch: Fetch, status: int, kind: str, retryable: bool
) -> None:
    error = failure(lambda: fetch(server.add_error("talk.mp3", status)))
    assert (error.kind, error.retryable) == (kind, retryable)


@pytest.mark.media
def test_larger_than_the_limit_is_refused_and_removed(
    server: MediaServer, fetch: Fetch, tmp_path: Path
) -> None:
    error = failure(lambda: fetch(server.url("english.wav"), max_bytes=1000))
    assert (error.kind, error.retryable) == ("too_large", False)
    assert list((tmp_path / "download").iterdir()) == []


@pytest.mark.media
def test_cancellation_stops_the_fetch(server: MediaServer, fetch: Fetch) -> None:
    error = failure(lambda: fetch(server.url("english.wav"), cancelled=True))
    assert error.kind == "cancelled"


def test_unreachable_host_is_a_retryable_network_error(fetch: Fetch) -> None:
    error = failure(lambda: fetch(f"http://127.0.0.1:{free_port()}/talk.mp3"))  # nothing listens
    assert (error.kind, error.retryable) == ("network", True)


@pytest.mark.parametrize("url", [None, "", "ftp://example.org/a.mp3", "http://", "http://host:port/a", 42])
def test_malformed_urls_are_refused_before_any_request(fetch: Fetch, url: Any) -> None:
    error = failure(lambda: fetch(url))
    assert (error.kind, error.retryable) == ("bad_url", False)
