"""yt-dlp's connections pass the address policy: a stub resolver, a real server on 127.0.0.1."""

from __future__ import annotations

import io
import logging
import subprocess
import wave
from collections.abc import Iterator
from pathlib import Path

import pytest

from taskpost.agent.handlers.base import HandlerError
from taskpost.agent.media.download import Downloaded, Limits, download_audio
from taskpost.agent.net import yt_dlp_guard
from taskpost.agent.net.addresses import AddressPolicy, parse_networks
from tests.agent.net.conftest import StubResolver
from tests.media_fixtures.media_server import audio_page
from tests.support.page_server import Answer, PageServer, html, page_server

yt_dlp = pytest.importorskip("yt_dlp", reason="needs taskpost[download]")


def silence_wav() -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(b"\0\0" * 4000)
    return buffer.getvalue()


@pytest.fixture
def server() -> Iterator[PageServer]:
    with page_server() as running:
        running.add("/a.wav", Answer(200, {"Content-Type": "audio/wav"}, silence_wav()))
        yield running


def download(url: str, policy: AddressPolicy, dest: Path) -> Downloaded:
    return download_audio(
        url,
        dest,
        limits=Limits(socket_timeout_s=5),
        progress=lambda fraction, message: None,
        is_cancelled=lambda: False,
        logger=logging.getLogger("test"),
        policy=policy,
    )


def test_the_hooked_names_exist_in_this_yt_dlp() -> None:
    """Fails when a yt-dlp upgrade renames what the guard replaces."""
    yt_dlp_guard.install(AddressPolicy())
    module = yt_dlp.networking._urllib
    assert module.create_connection is yt_dlp_guard._guarded_create_connection
    assert module.UrllibRH.RH_KEY == "Urllib"


@pytest.mark.media  # ffmpeg converts the download
def test_yt_dlp_connects_through_the_policy(server: PageServer, tmp_path: Path) -> None:
    """``local.test`` resolves only through the stub, so the download proves yt-dlp used it."""
    resolver = StubResolver({"local.test": ["127.0.0.1"]})
    policy = AddressPolicy(allowed_networks=parse_networks(["127.0.0.0/8"]), resolver=resolver)
    page = server.add("/episode.html", html(audio_page(f"http://local.test:{server.port}/a.wav")))
    done = download(page.replace("127.0.0.1", "local.test"), policy, tmp_path / "ok")
    assert done.path.is_file()
    assert resolver.calls.count("local.test") >= 3, "the check before the call, then each connection"
    assert [path for path, _, _ in server.requests if path == "/a.wav"]


def test_a_media_link_to_an_internal_address_is_refused_inside_yt_dlp(
    server: PageServer, tmp_path: Path
) -> None:
    resolver = StubResolver({"internal.test": ["10.1.2.3"]})
    policy = AddressPolicy(allowed_networks=parse_networks(["127.0.0.1/32"]), resolver=resolver)
    page = server.add("/episode.html", html(audio_page(f"http://internal.test:{server.port}/a.wav")))
    with pytest.raises(HandlerError) as caught:
        download(page, policy, tmp_path / "refused")
    error = caught.value
    assert (error.kind, error.retryable) == ("unsafe_address", False), error.message
    assert "internal.test resolves to 10.1.2.3, a private address" in error.message
    assert [path for path, _, _ in server.requests] == ["/episode.html"]


def test_a_refused_url_never_reaches_yt_dlp(server: PageServer, tmp_path: Path) -> None:
    with pytest.raises(HandlerError) as caught:
        download(server.url("/a.wav"), AddressPolicy(), tmp_path / "refused")
    assert (caught.value.kind, caught.value.retryable) == ("unsafe_address", False)
    assert server.requests == []


@pytest.mark.media  # ffmpeg converts the download
def test_hls_is_downloaded_by_yt_dlp_itself_through_the_guard(tmp_path: Path) -> None:
    """ffmpeg only converts the local file: no request carries its ``Lavf`` user agent."""
    site = tmp_path / "hls"
    site.mkdir()
    command = ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "sine=frequency=440:duration=3", "-c:a", "aac"]
    command += ["-b:a", "32k", "-f", "hls", "-hls_time", "1", "-hls_playlist_type", "vod"]
    subprocess.run(
        [*command, "-hls_segment_filename", str(site / "seg%d.ts"), str(site / "list.m3u8")], check=True
    )
    resolver = StubResolver({"local.test": ["127.0.0.1"]})
    policy = AddressPolicy(allowed_networks=parse_networks(["127.0.0.1/32"]), resolver=resolver)
    with page_server() as server:
        for path in site.iterdir():
            kind = "application/vnd.apple.mpegurl" if path.suffix == ".m3u8" else "video/mp2t"
            server.add(f"/{path.name}", Answer(200, {"Content-Type": kind}, path.read_bytes()))
        done = download(f"http://local.test:{server.port}/list.m3u8", policy, tmp_path / "out")
    assert done.path.is_file() and done.metadata["duration_s"] == pytest.approx(3, abs=0.3)
    paths = [path for path, _, _ in server.requests]
    assert {"/list.m3u8", "/seg0.ts", "/seg3.ts"} <= set(paths)
    assert not [agent for _, _, agent in server.requests if agent.startswith("Lavf")]
    assert resolver.calls.count("local.test") >= len(paths), "every connection went through the guard"


def test_a_stream_yt_dlp_would_hand_to_ffmpeg_is_refused_before_ffmpeg_runs(tmp_path: Path) -> None:
    """SAMPLE-AES is beyond yt-dlp's own HLS downloader: it would delegate the stream to ffmpeg,
    which fetches the key and the segments itself, unchecked."""
    manifest = "\n".join(
        [
            "#EXTM3U",
            "#EXT-X-VERSION:3",
            "#EXT-X-TARGETDURATION:1",
            "#EXT-X-PLAYLIST-TYPE:VOD",
            '#EXT-X-KEY:METHOD=SAMPLE-AES,URI="/key.bin"',
            "#EXTINF:1.0,",
            "/seg0.ts",
            "#EXT-X-ENDLIST",
            "",
        ]
    )
    resolver = StubResolver({"local.test": ["127.0.0.1"]})
    policy = AddressPolicy(allowed_networks=parse_networks(["127.0.0.1/32"]), resolver=resolver)
    with page_server() as server:
        server.add(
            "/list.m3u8", Answer(200, {"Content-Type": "application/vnd.apple.mpegurl"}, manifest.encode())
        )
        with pytest.raises(HandlerError) as caught:
            download(f"http://local.test:{server.port}/list.m3u8", policy, tmp_path / "out")
        paths = [path for path, _, _ in server.requests]
    assert (caught.value.kind, caught.value.retryable) == ("unsafe_address", False), caught.value.message
    assert "ffmpeg" in caught.value.message and "--allow-private-urls" in caught.value.message
    assert set(paths) == {"/list.m3u8"}, "neither the key nor a segment was fetched"


def test_with_private_urls_allowed_outside_downloaders_run_as_before() -> None:
    yt_dlp_guard.install(AddressPolicy(allow_private=True))
    external = yt_dlp.downloader.external.ExternalFD.real_download
    assert external.__wrapped__ is not None  # guarded, and lets the call through under this policy
    yt_dlp_guard.install(AddressPolicy())
