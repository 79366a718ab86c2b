"""Download one web page within a size and time limit, through a guarded client.

``fetch_page`` streams the answer of one GET (redirects followed by the client, each hop checked)
and fails with the ``webpage`` task's error kinds: ``bad_url`` (a redirect to another scheme),
``http_error`` (4xx and too many redirects final; 408, 425, 429 and 5xx retried), ``not_html``
(checked from the content type before the body is read), ``too_large`` (the announced length,
then every chunk) and ``network`` (connection, timeout; retried). ``unsafe_address`` comes from
the client's connection layer.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from taskpost.agent.handlers.base import HandlerError

HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
_RETRY_STATUSES = frozenset({408, 425, 429})
_SNIFF = (b"<!doctype html", b"<html")

Progress = Callable[[float | None, str], None]


@dataclass(frozen=True)
class Page:
    """A downloaded HTML page."""

    url: str
    """Where it came from after redirects."""
    content_type: str
    body: bytes


def _final(kind: str, message: str) -> HandlerError:
    return HandlerError(message, retryable=False, kind=kind)


def _status_error(url: str, status: int, reason: str) -> HandlerError:
    message = f"{url}: HTTP {status}" + (f" {reason}" if reason else "")
    return HandlerError(message, retryable=status in _RETRY_STATUSES or status >= 500, kind="http_error")


def _media_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def _read(
    response: httpx.Response,
    url: str,
    max_bytes: int,
    deadline: float,
    progress: Progress,
    is_cancelled: Callable[[], bool],
) -> bytes:
    announced = response.headers.get("content-length", "")
    total = int(announced) if announced.isdigit() else None
    if total is not None and total > max_bytes:
        raise _final("too_large", f"{url} is {total} bytes, more than max_size_mb allows ({max_bytes} bytes)")
    chunks: list[bytes] = []
    done = 0
    for chunk in response.iter_bytes():
        if is_cancelled():
            raise HandlerError("cancelled during the download", kind="cancelled")
        if time.monotonic() > deadline:
            raise HandlerError(f"{url}: the download took longer than timeout_s", kind="network")
        done += len(chunk)
        if done > max_bytes:
            raise _final("too_large", f"{url} is larger than max_size_mb allows ({max_bytes} bytes)")
        chunks.append(chunk)
        progress(min(1.0, done / total) if total else None, f"downloading: {done / 1e3:.0f} kB")
    return b"".join(chunks)


def fetch_page(
    client: httpx.Client,
    url: str,
    *,
    max_bytes: int,
    timeout_s: float,
    progress: Progress,
    is_cancelled: Callable[[], bool],
) -> Page:
    """The HTML page at ``url``; see the module's docstring for the errors."""
    deadline = time.monotonic() + timeout_s
    try:
        with client.stream("GET", url) as response:
            final_url = str(response.url)
            if response.status_code >= 400:
                raise _status_error(final_url, response.status_code, response.reason_phrase)
            content_type = response.headers.get("content-type", "")
            kind = _media_type(content_type)
            if kind and kind not in HTML_TYPES:
                raise _final("not_html", f"{final_url} is {kind}, not an HTML page (text/html)")
            body = _read(response, final_url, max_bytes, deadline, progress, is_cancelled)
    except httpx.TooManyRedirects as exc:
        raise _final(
            "http_error", f"{url}: too many redirects (max_redirects={client.max_redirects})"
        ) from exc
    except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
        raise _final("bad_url", f"{url}: redirected to a URL that is not http(s): {exc}") from exc
    except httpx.TransportError as exc:
        raise HandlerError(f"{url}: network error: {exc}", kind="network") from exc
    if not kind and not body.lstrip()[:20].lower().startswith(_SNIFF):
        raise _final("not_html", f"{final_url} has no content type and does not look like HTML")
    return Page(url=final_url, content_type=content_type, body=body)
