"""What a failed yt-dlp download means for the job: each failure a ``HandlerError`` with a stable
``kind``, final or retryable (docs/media.md has the table)."""

from __future__ import annotations

import re
from typing import Any

from taskpost.agent.handlers.base import HandlerError
from taskpost.agent.media.extras import require
from taskpost.agent.net.yt_dlp_guard import RefusedAddress

_PRIVATE = re.compile(
    r"private video|video is private|sign in|\blog ?in\b|members[- ]only|registered users"
    r"|available to (?:members|subscribers)|requires? (?:authentication|payment|purchase)|--cookies",
    re.IGNORECASE,
)
_RETRY_STATUSES = {408, 425, 429}


def yt_dlp() -> Any:
    """The yt-dlp package (untyped), or ``MissingExtra("download")``."""
    return require("yt_dlp", "download", package="yt-dlp")


def final_error(kind: str, message: str) -> HandlerError:
    """An error that another attempt would not change."""
    return HandlerError(message, retryable=False, kind=kind)


def too_long(url: str, duration: float, max_duration_s: float) -> HandlerError:
    return final_error(
        "too_long", f"{url} lasts {duration:.0f} s, more than max_duration_s={max_duration_s:g}"
    )


def too_large(url: str, size: int, max_bytes: int) -> HandlerError:
    megabytes = f"{max_bytes / 1e6:.0f} MB ({size / 1e6:.0f} MB so far)"
    return final_error("too_large", f"{url} is larger than {megabytes}")


def http_status_error(url: str, status: int, detail: str = "") -> HandlerError:
    """What an HTTP error status means: ``not_found`` (404, 410), ``network`` (408, 425, 429 and 5xx,
    retried), else a final ``http_error``."""
    if status in (404, 410):
        return final_error("not_found", f"{url}: not found (HTTP {status})")
    if status in _RETRY_STATUSES or status >= 500:
        return HandlerError(f"{url}: the server answered HTTP {status}", kind="network")
    return final_error("http_error", f"{url}: HTTP {status}" + (f": {detail}" if detail else ""))


def _causes(exc: BaseException) -> list[BaseException]:
    """``exc`` and what caused it, through yt-dlp's ``exc_info`` and ``cause`` links."""
    chain: list[BaseException] = []
    todo: list[Any] = [exc]
    while todo:
        item = todo.pop(0)
        if not isinstance(item, BaseException) or any(item is seen for seen in chain):
            continue
        chain.append(item)
        exc_info = getattr(item, "exc_info", None)
        linked = exc_info[1] if isinstance(exc_info, tuple) and len(exc_info) == 3 else None
        todo += [linked, getattr(item, "cause", None), item.__cause__, item.__context__]
    return chain


def _clean(message: str) -> str:
    message = message.removeprefix("ERROR: ").strip()
    message = re.sub(r"\s*\(caused by .*\)$", "", message, flags=re.DOTALL)
    return re.sub(r";?\s*please report this issue on .*$", "", message, flags=re.DOTALL | re.IGNORECASE)


def classify(exc: BaseException, url: str) -> HandlerError:
    """The ``HandlerError`` for a yt-dlp failure while downloading ``url``."""
    ytdl = yt_dlp()
    chain = _causes(exc)
    refused = [item.error for item in chain if isinstance(item, RefusedAddress)]
    if refused:
        return refused[0]
    extractor_errors = [item for item in chain if isinstance(item, ytdl.utils.ExtractorError)]
    # The extractor's own words, without the "[site] id:" prefix that may repeat the URL's words.
    message = _clean(extractor_errors[0].orig_msg if extractor_errors else str(exc))
    statuses = [int(item.status) for item in chain if isinstance(item, ytdl.networking.exceptions.HTTPError)]
    status = statuses[0] if statuses else None
    if status is not None and http_status_error(url, status).kind != "http_error":
        return http_status_error(url, status)
    if any(isinstance(item, ytdl.utils.UnsupportedError) for item in chain) or "Unsupported URL" in message:
        return final_error(
            "unsupported_url", f"{url}: no audio or video found (no yt-dlp extractor understands this page)"
        )
    if _PRIVATE.search(message.replace(url, "")):
        return final_error("private_video", f"{url} is private or needs signing in: {message}")
    if status is not None:
        return http_status_error(url, status, message)
    if "is not a valid URL" in message:
        return final_error("bad_url", f"malformed URL {url!r}")
    network = (ytdl.networking.exceptions.TransportError, TimeoutError, ConnectionError)
    if any(isinstance(item, network) for item in chain):
        return HandlerError(f"{url}: network error: {message}", kind="network")
    retryable = bool(extractor_errors) and not any(item.expected for item in extractor_errors)
    return HandlerError(f"{url}: {message}", retryable=retryable, kind="download_failed")
