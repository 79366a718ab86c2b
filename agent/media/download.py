"""Download the best audio of one URL with yt-dlp, within limits, mapping its errors to ours.

``download_audio`` takes any page yt-dlp understands (YouTube and its ~1800 other sites, a page
with an HTML5 ``<audio>``/``<video>`` tag, a direct media link) and leaves one file in a folder:
the best audio-only format, or the audio stream of the best format copied out of its video by
ffmpeg (``FFmpegExtractAudio``). Only the first entry of a playlist is downloaded.

yt-dlp runs through its Python API, which never reads configuration files (only its command line
does), with its cache off, no progress bar and every message sent to the task's logger.

Every failure is a ``HandlerError`` with a stable ``kind`` (docs/media.md has the table):
``bad_url``, ``not_found`` (404, 410), ``unsupported_url`` (no media found), ``private_video``
(private, members-only, sign-in), ``live_stream``, ``too_long`` (checked before the download when
the site tells the duration, else on the file), ``too_large``, ``http_error`` (other 4xx) are
final; ``network`` (connection, timeout, 408/429/5xx) is retried; ``download_failed`` is retried
only when yt-dlp calls the error a bug of its own.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from taskpost.agent.handlers.base import HandlerError
from taskpost.agent.media.download_errors import classify, final_error, too_large, too_long, yt_dlp
from taskpost.agent.net import yt_dlp_guard
from taskpost.agent.net.addresses import AddressPolicy
from taskpost.agent.workdir import make_private_dirs

Logger = logging.Logger | logging.LoggerAdapter[logging.Logger]
Progress = Callable[[float | None, str], None]
"""Called with the downloaded fraction (None when the size is unknown) and a short message."""


@dataclass(frozen=True)
class Limits:
    """What one download may take."""

    max_duration_s: float = 4 * 3600
    max_bytes: int = 2 * 1024**3
    socket_timeout_s: float = 30


@dataclass(frozen=True)
class Downloaded:
    """The downloaded file and what the site says about it."""

    path: Path
    metadata: dict[str, Any]


def _positive(params: dict[str, Any], name: str, default: float) -> float:
    value = params.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        message = f"{name} must be a positive number, got {value!r}"
        raise HandlerError(message, retryable=False, kind="bad_params")
    return float(value)


def parse_limits(params: dict[str, Any]) -> Limits:
    """The download limits a job's params ask for (``max_duration_s``, ``max_size_mb``)."""
    default = Limits()
    return Limits(
        max_duration_s=_positive(params, "max_duration_s", default.max_duration_s),
        max_bytes=int(_positive(params, "max_size_mb", default.max_bytes / 1024**2) * 1024**2),
    )


class _Stop(Exception):
    """Raised inside yt-dlp's callbacks to abort the download with ``error``."""

    def __init__(self, error: HandlerError) -> None:
        super().__init__(error.message)
        self.error = error


def require_ffmpeg() -> None:
    """Fail unless ``ffmpeg`` and ``ffprobe`` are on the PATH (the Debian package ``ffmpeg``)."""
    missing = [tool for tool in ("ffmpeg", "ffprobe") if shutil.which(tool) is None]
    if missing:
        raise final_error(
            "missing_ffmpeg", f"{' and '.join(missing)} not found: install ffmpeg (apt-get install ffmpeg)"
        )


def check_url(url: object) -> str:
    """``url`` if it is an http(s) URL with a host, else a ``bad_url`` error."""
    if not isinstance(url, str) or not url.strip():
        raise final_error("bad_url", "param url is required: the page or media link to download")
    url = url.strip()
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (raises ValueError on a port that is not a number)
    except ValueError as exc:
        raise final_error("bad_url", f"malformed URL {url!r}: {exc}") from exc
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname or any(c.isspace() for c in url):
        raise final_error("bad_url", f"malformed URL {url!r}: expected http(s)://host/...")
    return url


def check_address(url: str, policy: AddressPolicy) -> None:
    """Refuse ``url`` (``unsafe_address``) before any request when its host fails ``policy``."""
    try:
        policy.check_url(url)
    except OSError as exc:
        raise HandlerError(
            f"{url}: network error: the host does not resolve ({exc})", kind="network"
        ) from exc


def probe_duration(path: Path) -> float | None:
    """The media's duration in seconds according to ffprobe; None when it cannot tell."""
    command = ["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", str(path)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
        return float(done.stdout.strip())
    except (OSError, subprocess.TimeoutExpired, ValueError):
        return None


def metadata(info: dict[str, Any], url: str) -> dict[str, Any]:
    """The fields of a yt-dlp info dict that a result shows."""
    return {
        "title": info.get("title"),
        "duration_s": info.get("duration"),
        "uploader": info.get("uploader") or info.get("channel") or info.get("uploader_id"),
        "source_url": url,
        "webpage_url": info.get("webpage_url"),
        "extractor": info.get("extractor_key") or info.get("extractor"),
        "id": info.get("id"),
        "upload_date": info.get("upload_date"),
    }


class _YtDlpLogger:
    """yt-dlp's logger interface onto a task's logger; yt-dlp's info messages become debug."""

    def __init__(self, logger: Logger) -> None:
        self.logger = logger

    def debug(self, message: str) -> None:  # yt-dlp's info messages come here too
        self.logger.debug("yt-dlp: %s", message.removeprefix("[debug] "))

    def warning(self, message: str) -> None:
        self.logger.warning("yt-dlp: %s", message.removeprefix("WARNING: "))

    def error(self, message: str) -> None:  # the error itself is raised and reported too
        self.logger.info("yt-dlp: %s", message.removeprefix("ERROR: "))


def download_audio(
    source: object,
    dest: Path,
    *,
    limits: Limits,
    progress: Progress,
    is_cancelled: Callable[[], bool],
    logger: Logger,
    policy: AddressPolicy,
) -> Downloaded:
    """Download the best audio of the URL ``source`` into the folder ``dest`` as ``audio.EXT``.

    Every connection yt-dlp makes passes ``policy`` (``unsafe_address``), and HLS/DASH are
    downloaded natively, so ffmpeg never fetches a URL itself: it only converts the local file."""
    url = check_url(source)
    ytdl = yt_dlp()
    check_address(url, policy)
    make_private_dirs(dest)

    def refuse(info: dict[str, Any], *, incomplete: bool = False) -> None:
        if info.get("is_live") or info.get("live_status") in ("is_live", "is_upcoming"):
            raise _Stop(final_error("live_stream", f"{url} is a live stream"))
        duration = info.get("duration")
        if isinstance(duration, int | float) and duration > limits.max_duration_s:
            raise _Stop(too_long(url, duration, limits.max_duration_s))

    def hook(status: dict[str, Any]) -> None:
        if is_cancelled():
            raise _Stop(HandlerError("cancelled during the download", kind="cancelled"))
        done = status.get("downloaded_bytes") or 0
        if done > limits.max_bytes:
            raise _Stop(too_large(url, done, limits.max_bytes))
        total = status.get("total_bytes") or status.get("total_bytes_estimate")
        fraction = min(1.0, done / total) if total else None
        progress(fraction, f"downloading: {done / 1e6:.1f} MB" + (f" of {total / 1e6:.1f}" if total else ""))

    options: dict[str, Any] = {
        "format": "bestaudio/best",
        "paths": {"home": str(dest)},
        "outtmpl": {"default": "audio.%(ext)s"},
        "postprocessors": [{"key": "FFmpegExtractAudio", "preferredcodec": "best"}],
        "noplaylist": True,
        "playlist_items": "1",
        "match_filter": refuse,
        "progress_hooks": [hook],
        "socket_timeout": limits.socket_timeout_s,
        "cachedir": False,
        "quiet": True,
        "noprogress": True,
        "logger": _YtDlpLogger(logger),
        "external_downloader": {"default": "native"},
        "proxy": "",  # no proxy from the environment: it would connect for us, unchecked
    }
    yt_dlp_guard.take_refusal()
    try:
        with ytdl.YoutubeDL(options) as ydl:
            yt_dlp_guard.guard(ydl, policy)
            info: dict[str, Any] = ydl.sanitize_info(ydl.extract_info(url, download=True))
    except _Stop as stop:
        raise stop.error from None
    except ytdl.utils.YoutubeDLError as exc:
        raise (yt_dlp_guard.take_refusal() or classify(exc, url)) from exc
    if info.get("_type") == "playlist":
        entries = [entry for entry in info.get("entries") or [] if entry]
        if not entries:
            raise final_error("unsupported_url", f"{url}: the playlist holds no media")
        info = entries[0]
    files = [Path(item["filepath"]) for item in info.get("requested_downloads") or [] if item.get("filepath")]
    path = files[-1] if files else next(iter(sorted(dest.glob("audio.*"))), None)
    if path is None or not path.is_file():
        raise final_error("download_failed", f"{url}: yt-dlp finished without a file")
    size = path.stat().st_size
    if size > limits.max_bytes:
        raise too_large(url, size, limits.max_bytes)
    found = metadata(info, url)
    duration = probe_duration(path)
    if duration is not None:
        found["duration_s"] = round(duration, 3)
        if duration > limits.max_duration_s:
            path.unlink(missing_ok=True)
            raise too_long(url, duration, limits.max_duration_s)
    found.update(file=path.name, size=size)
    return Downloaded(path=path, metadata=found)
