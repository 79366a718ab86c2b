"""The url_audio handler against a local web server of generated speech: yt-dlp for real."""

from __future__ import annotations

import gc
import json
import subprocess
import sys
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from taskpost.agent.handlers.base import CancelReason, HandlerError, TaskContext
from taskpost.agent.handlers.url_audio import UrlAudioHandler, parse_limits
from taskpost.agent.media.download_errors import classify
from taskpost.agent.media.progress import ProgressWindow
from taskpost.agent.net.addresses import ALLOW_ALL
from taskpost.launch import free_port
from tests.agent.handlers.conftest import RecordingContext
from tests.media_fixtures import speech
from tests.media_fixtures.media_server import MediaServer, audio_page, json_ld_page, plain_page, serve

MakeCtx = Callable[..., RecordingContext]


@pytest.fixture(autouse=True)
def _close_leaked_sockets() -> Iterator[None]:
    """yt-dlp's generic extractor leaves the response of a direct media link unread and open; the
    garbage collector closes it later, with a ResourceWarning that would fail whichever test runs
    then. Collect it here, at the end of the test that caused it, without the warning."""
    yield
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()


@pytest.fixture
def ytdl() -> Any:
    return pytest.importorskip("yt_dlp", reason="needs taskpost[download]")


@pytest.fixture
def server(ytdl: Any, speech_dir: Path) -> Iterator[MediaServer]:
    with serve(speech_dir) as media_server:
        yield media_server


@pytest.fixture
def download(make_media_ctx: MakeCtx) -> Callable[..., tuple[RecordingContext, dict[str, Any]]]:
    """Runs a download-only job (no transcription) for ``url``; returns its context and result."""

    def run(url: str, **params: Any) -> tuple[RecordingContext, dict[str, Any]]:
        ctx = make_media_ctx(None, {"url": url, "transcribe": False, **params}, task_type="url_audio")
        ctx.url_policy = ALLOW_ALL  # the server is on 127.0.0.1
        return ctx, UrlAudioHandler().run(ctx)

    return run


def failure(run: Callable[[], Any]) -> HandlerError:
    with pytest.raises(HandlerError) as caught:
        run()
    return caught.value


def streams(path: Path) -> list[str]:
    probe = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "stream=codec_type", "-of", "csv=p=0", str(path)],
        check=True,
        capture_output=True,
        text=True,
    )
    return probe.stdout.split()


# -- downloads ----------------------------------------------------------------------------------
@pytest.mark.media
def test_direct_link_is_downloaded_by_the_generic_extractor(server: MediaServer, download: Any) -> None:
    url = server.url("english.mp3")
    ctx, result = download(url)
    meta = result["metadata"]
    assert meta["source_url"] == url
    assert meta["extractor"] == "Generic"
    assert meta["title"] == "english"
    assert meta["duration_s"] == pytest.approx(speech.duration_s(server.root / "english.mp3"), abs=0.1)
    assert result["audio"] == "audio.mp3" == meta["file"]
    saved = ctx.output_dir / "audio.mp3"
    assert saved.read_bytes() == (server.root / "english.mp3").read_bytes()
    assert json.loads((ctx.output_dir / "metadata.json").read_text()) == meta
    assert sorted(p.name for p in ctx.output_dir.iterdir()) == ["audio.mp3", "metadata.json"]
    progress = [p for p, _ in ctx.reports if p is not None]
    assert progress == sorted(progress) and progress[-1] == 1.0
    assert any(message and message.startswith("downloading") for _, message in ctx.reports)


@pytest.mark.media
def test_page_with_an_audio_tag_is_read_by_the_html5_extractor(server: MediaServer, download: Any) -> None:
    url = server.add_page("episode.html", audio_page("/english.mp3", title="Episode one"))
    _, result = download(url)
    assert result["metadata"]["extractor"] == "HTML5MediaEmbed"
    assert result["metadata"]["title"].startswith("Episode one")
    assert result["metadata"]["webpage_url"] == url


@pytest.mark.media
def test_audio_of_a_video_is_extracted_with_ffmpeg(server: MediaServer, download: Any) -> None:
    ctx, result = download(server.url("english.mp4"))
    saved = ctx.output_dir / result["audio"]
    assert saved.suffix == ".m4a"
    assert streams(saved) == ["audio"]


@pytest.mark.media
def test_json_ld_gives_the_uploader_and_duration_before_download(server: MediaServer, download: Any) -> None:
    page = json_ld_page(server.url("english.mp3"), name="Weather talk", duration_s=12, author="Ann")
    _, result = download(server.add_page("talk.html", page))
    assert result["metadata"]["title"] == "Weather talk"
    assert result["metadata"]["uploader"] == "Ann"


# -- refusals -----------------------------------------------------------------------------------
@pytest.mark.media
def test_missing_file_is_not_found(server: MediaServer, download: Any) -> None:
    error = failure(lambda: download(server.url("missing.mp3")))
    assert (error.kind, error.retryable) == ("not_found", False)
    assert "HTTP 404" in error.message


@pytest.mark.media
def test_page_without_media_is_unsupported(server: MediaServer, download: Any) -> None:
    error = failure(lambda: download(server.add_page("about.html", plain_page())))
    assert (error.kind, error.retryable) == ("unsupported_url", False)


@pytest.mark.media
def test_duration_known_before_download_is_refused_without_downloading(
    server: MediaServer, download: Any, tmp_path: Path
) -> None:
    page = json_ld_page(server.url("english.mp3"), name="Marathon", duration_s=5 * 3600, author="Bo")
    error = failure(lambda: download(server.add_page("long.html", page)))
    assert (error.kind, error.retryable) == ("too_long", False)
    assert "18000 s" in error.message and "14400" in error.message
    assert not [path for path in tmp_path.rglob("*") if path.is_file()], "nothing was downloaded"


@pytest.mark.media
def test_duration_found_after_download_is_refused(server: MediaServer, download: Any, tmp_path: Path) -> None:
    error = failure(lambda: download(server.url("english.mp3"), max_duration_s=2))
    assert (error.kind, error.retryable) == ("too_long", False)
    assert not list(tmp_path.rglob("audio.*")), "the refused file is deleted"


@pytest.mark.media
def test_download_larger_than_the_limit_is_refused(server: MediaServer, download: Any) -> None:
    error = failure(lambda: download(server.url("english.wav"), max_size_mb=0.01))
    assert (error.kind, error.retryable) == ("too_large", False)


@pytest.mark.media
@pytest.mark.parametrize("status", [500, 503, 429])
def test_server_errors_are_retryable(server: MediaServer, download: Any, status: int) -> None:
    error = failure(lambda: download(server.add_error("busy.mp3", status)))
    assert (error.kind, error.retryable) == ("network", True)


@pytest.mark.media
def test_forbidden_is_an_http_error(server: MediaServer, download: Any) -> None:
    error = failure(lambda: download(server.add_error("secret.mp3", 403)))
    assert (error.kind, error.retryable) == ("http_error", False)


def test_unreachable_host_is_a_retryable_network_error(ytdl: Any, download: Any) -> None:
    error = failure(lambda: download(f"http://127.0.0.1:{free_port()}/speech.mp3"))  # nothing listens
    assert (error.kind, error.retryable) == ("network", True)


@pytest.mark.parametrize(
    "url", [None, "", "not a url", "notaurl", "ftp://example.org/a.mp3", "http://", "http://host:port/a", 42]
)
def test_malformed_urls_are_refused_before_yt_dlp(download: Any, url: Any) -> None:
    error = failure(lambda: download(url))
    assert (error.kind, error.retryable) == ("bad_url", False)


@pytest.mark.media
def test_cancellation_stops_the_download(server: MediaServer, make_media_ctx: MakeCtx) -> None:
    ctx = make_media_ctx(None, {"url": server.url("english.wav"), "transcribe": False}, task_type="url_audio")
    ctx.url_policy = ALLOW_ALL
    ctx.cancel(CancelReason.CANCEL_REQUESTED)
    error = failure(lambda: UrlAudioHandler().run(ctx))
    assert error.kind == "cancelled"
    assert not (ctx.work_dir / "outputs" / "audio.wav").exists()


# -- yt-dlp's messages for what cannot be served locally ------------------------------------------
PRIVATE_MESSAGES = [
    "Private video. Sign in if you've been granted access to this video",
    "This video is private",
    "Sign in to confirm your age. This video may be inappropriate for some users.",
    "Join this channel to get access to members-only content like this video, and other exclusive perks.",
    "This video is only available for registered users. Use --cookies-from-browser or --cookies for the "
    "authentication. See  https://github.com/yt-dlp/yt-dlp/wiki/FAQ  for how to manually pass cookies",
]


def as_yt_dlp_raises(ytdl: Any, error: BaseException) -> BaseException:
    """``error`` wrapped as YoutubeDL.extract_info raises it: a DownloadError keeping exc_info."""
    try:
        raise error
    except BaseException as exc:
        return ytdl.utils.DownloadError(f"ERROR: [youtube] abc123: {exc}", sys.exc_info())


@pytest.mark.parametrize("message", PRIVATE_MESSAGES)
def test_private_and_sign_in_messages_are_private_video(ytdl: Any, message: str) -> None:
    raised = as_yt_dlp_raises(ytdl, ytdl.utils.ExtractorError(message, expected=True, video_id="abc123"))
    error = classify(raised, "https://www.youtube.com/watch?v=abc123")
    assert (error.kind, error.retryable) == ("private_video", False)
    assert error.message.startswith("https://www.youtube.com/watch?v=abc123 is private")


def test_words_of_the_url_do_not_make_a_video_private(ytdl: Any) -> None:
    url = "https://example.org/login/sign-in.mp3"
    raised = as_yt_dlp_raises(
        ytdl, ytdl.utils.ExtractorError("Requested format is not available", expected=True)
    )
    error = classify(raised, url)
    assert (error.kind, error.retryable) == ("download_failed", False)


def test_unexpected_extractor_errors_are_retried(ytdl: Any) -> None:
    raised = as_yt_dlp_raises(ytdl, ytdl.utils.ExtractorError("Unable to extract player response"))
    error = classify(raised, "https://example.org/v")
    assert (error.kind, error.retryable) == ("download_failed", True)
    assert "please report" not in error.message


# -- params and progress -------------------------------------------------------------------------
@pytest.mark.parametrize(
    "params",
    [{"transcribe": "yes"}, {"max_duration_s": 0}, {"max_duration_s": "1h"}, {"max_size_mb": True}],
)
def test_bad_params_are_refused(make_media_ctx: MakeCtx, params: dict[str, Any]) -> None:
    ctx = make_media_ctx(None, {"url": "http://127.0.0.1/a.mp3", **params}, task_type="url_audio")
    error = failure(lambda: UrlAudioHandler().run(ctx))
    assert (error.kind, error.retryable) == ("bad_params", False)


def test_limits_default_to_four_hours() -> None:
    limits = parse_limits({})
    assert limits.max_duration_s == 4 * 3600
    assert parse_limits({"max_size_mb": 1}).max_bytes == 1024**2


def test_transcribing_without_a_transcriber_needs_the_stt_extra(make_media_ctx: MakeCtx) -> None:
    ctx = make_media_ctx(None, {"url": "http://127.0.0.1/a.mp3"}, task_type="url_audio")
    error = failure(lambda: UrlAudioHandler().run(ctx))
    assert (error.kind, error.retryable) == ("missing_extra", False)
    assert "taskpost[stt]" in error.message


def test_progress_window_maps_progress_and_shares_cancellation(tmp_path: Path) -> None:
    ctx = TaskContext(job_id="j", task_type="url_audio", attempt=1, params={}, inputs={}, work_dir=tmp_path)
    window = ProgressWindow(ctx, 0.3, 1.0)
    window.heartbeat(0.0, "loading")
    assert ctx.progress_snapshot() == (0.3, "loading")
    window.heartbeat(0.5)
    assert ctx.progress_snapshot() == (pytest.approx(0.65), "loading")
    window.heartbeat(None, "still")
    assert ctx.progress_snapshot() == (pytest.approx(0.65), "still")
    assert not window.is_cancelled()
    ctx.cancel(CancelReason.CANCEL_REQUESTED)
    assert window.is_cancelled()
    assert window.output_dir == ctx.output_dir


# -- transcription -----------------------------------------------------------------------------
@pytest.mark.media
def test_page_audio_is_downloaded_then_transcribed(
    server: MediaServer, make_media_ctx: MakeCtx, transcriber: Any
) -> None:
    jiwer = pytest.importorskip("jiwer", reason="needs jiwer (dev dependency)")
    url = server.add_page("news.html", audio_page("/english.mp3", title="Morning news"))
    ctx = make_media_ctx(None, {"url": url, "language": "en"}, task_type="url_audio")
    ctx.url_policy = ALLOW_ALL
    result = UrlAudioHandler(transcriber=transcriber).run(ctx)
    assert result["metadata"]["title"].startswith("Morning news")
    text = speech.normalise(result["transcription"]["text"])
    assert jiwer.wer(speech.normalise(speech.ENGLISH_TEXT), text) < 0.15, text
    names = sorted(p.name for p in ctx.output_dir.iterdir())
    assert "metadata.json" in names and "transcript.txt" in names
    assert not [name for name in names if name.startswith("audio.")], "the audio is not an output"
    progress = [p for p, _ in ctx.reports if p is not None]
    assert progress[-1] == 1.0
    assert max(p for p, m in ctx.reports if p is not None and m and m.startswith("downloading")) <= 0.3
    assert any(p is not None and 0.3 < p < 1.0 for p, _ in ctx.reports), "transcription reports 0.3..1"
