"""Fetch the media a URL names: a direct media link over plain HTTP, a page through yt-dlp.

``fetch_media`` asks the URL with one streamed GET. When the answer is media (an ``audio/*`` or
``video/*`` content type, or a generic binary type on a path with a media extension) the body is
written to the folder as it arrives, within ``Limits.max_bytes`` (checked against the announced
length first, then on every chunk). Anything else is a page: the response is closed unread and
the URL goes to yt-dlp (``agent.media.download.download_audio``), which finds the media in it.

Both paths take the same URLs (``check_url``), reach only the addresses the task's
``AddressPolicy`` allows (checked on every redirect hop) and fail with the same error kinds
(docs/media.md): ``bad_url``, ``unsafe_address``, ``not_found``, ``http_error`` and
``too_large``/``too_long`` are final, ``network`` (connection, timeout, 408/429/5xx) is retried.
"""

from __future__ import annotations

import mimetypes
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import httpx

from taskpost.agent.handlers.base import HandlerError
from taskpost.agent.media.download import (
    Downloaded,
    Limits,
    Logger,
    Progress,
    check_url,
    download_audio,
    probe_duration,
)
from taskpost.agent.media.download_errors import http_status_error, too_large, too_long
from taskpost.agent.net.addresses import AddressPolicy
from taskpost.agent.net.guarded_http import guarded_client
from taskpost.agent.workdir import make_private_dirs, open_private

_MEDIA_EXTENSIONS = (
    "aac aif aiff amr flac m4a m4v mka mkv mov mp2 mp3 mp4 mpeg mpg oga ogg opus wav weba webm wma wmv"
)
MEDIA_SUFFIXES = frozenset(f".{extension}" for extension in _MEDIA_EXTENSIONS.split(" "))
_GENERIC_TYPES = frozenset({"", "application/octet-stream", "binary/octet-stream", "application/ogg"})
_CHUNK = 1024 * 1024
MAX_REDIRECTS = 10


def _suffix(url: str) -> str:
    return PurePosixPath(urlsplit(url).path).suffix.lower()


def is_direct_media(content_type: str, url: str) -> bool:
    """Whether a response of ``content_type`` for ``url`` is the media itself rather than a page."""
    kind = content_type.split(";", 1)[0].strip().lower()
    if kind.startswith(("audio/", "video/")):
        return True
    return kind in _GENERIC_TYPES and _suffix(url) in MEDIA_SUFFIXES


def _file_name(url: str, content_type: str) -> str:
    suffix = _suffix(url)
    if suffix not in MEDIA_SUFFIXES:
        suffix = mimetypes.guess_extension(content_type.split(";", 1)[0].strip()) or ""
    return f"media{suffix}"


def _save(
    response: httpx.Response,
    path: Path,
    url: str,
    *,
    limits: Limits,
    progress: Progress,
    is_cancelled: Callable[[], bool],
) -> int:
    """Write the body of ``response`` to ``path`` within the limits; returns its size."""
    announced = response.headers.get("content-length")
    total = int(announced) if announced and announced.isdigit() else None
    if total is not None and total > limits.max_bytes:
        raise too_large(url, total, limits.max_bytes)
    done = 0
    with open_private(path) as fh:
        for chunk in response.iter_bytes(_CHUNK):
            if is_cancelled():
                raise HandlerError("cancelled during the download", kind="cancelled")
            done += len(chunk)
            if done > limits.max_bytes:
                raise too_large(url, done, limits.max_bytes)
            fh.write(chunk)
            fraction = min(1.0, done / total) if total else None
            of = f" of {total / 1e6:.1f}" if total else ""
            progress(fraction, f"downloading: {done / 1e6:.1f} MB{of}")
    return done


def _fetch_direct(
    response: httpx.Response,
    dest: Path,
    url: str,
    *,
    limits: Limits,
    progress: Progress,
    is_cancelled: Callable[[], bool],
) -> Downloaded:
    content_type = response.headers.get("content-type", "")
    path = dest / _file_name(str(response.url), content_type)
    try:
        size = _save(response, path, url, limits=limits, progress=progress, is_cancelled=is_cancelled)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    duration = probe_duration(path)
    if duration is not None and duration > limits.max_duration_s:
        path.unlink(missing_ok=True)
        raise too_long(url, duration, limits.max_duration_s)
    metadata: dict[str, Any] = {
        "title": PurePosixPath(urlsplit(str(response.url)).path).name or None,
        "duration_s": None if duration is None else round(duration, 3),
        "source_url": url,
        "content_type": content_type or None,
        "file": path.name,
        "size": size,
    }
    return Downloaded(path=path, metadata=metadata)


def fetch_media(
    source: object,
    dest: Path,
    *,
    limits: Limits,
    progress: Progress,
    is_cancelled: Callable[[], bool],
    logger: Logger,
    policy: AddressPolicy,
) -> Downloaded:
    """Fetch the media of the URL ``source`` into the folder ``dest``; see the module's docstring.

    Every connection, redirect hops included, passes ``policy`` (else ``unsafe_address``)."""
    url = check_url(source)
    make_private_dirs(dest)
    try:
        with (
            guarded_client(policy, timeout_s=limits.socket_timeout_s, max_redirects=MAX_REDIRECTS) as client,
            client.stream("GET", url) as response,
        ):
            if response.status_code >= 400:
                raise http_status_error(url, response.status_code, response.reason_phrase)
            if is_direct_media(response.headers.get("content-type", ""), str(response.url)):
                logger.info("fetching %s over plain HTTP", url)
                return _fetch_direct(
                    response, dest, url, limits=limits, progress=progress, is_cancelled=is_cancelled
                )
    except httpx.InvalidURL as exc:
        raise HandlerError(f"malformed URL {url!r}: {exc}", retryable=False, kind="bad_url") from exc
    except httpx.TooManyRedirects as exc:
        raise HandlerError(
            f"{url}: more than {MAX_REDIRECTS} redirects", retryable=False, kind="http_error"
        ) from exc
    except httpx.UnsupportedProtocol as exc:
        raise HandlerError(
            f"{url}: redirected to a URL that is not http(s)", retryable=False, kind="bad_url"
        ) from exc
    except httpx.TransportError as exc:
        raise HandlerError(f"{url}: network error: {exc}", kind="network") from exc
    logger.info("%s is a page: handing it to yt-dlp", url)
    return download_audio(
        url, dest, limits=limits, progress=progress, is_cancelled=is_cancelled, logger=logger, policy=policy
    )
