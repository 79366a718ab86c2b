"""robots.txt: whether a site lets the agent (user agent ``taskpost``) fetch a URL (RFC 9309).

The file is fetched through the caller's guarded client, so it passes the same address checks
as the page. A 4xx answer (no file) allows everything; a 5xx answer or an unreachable server is
a retryable ``network`` error rather than a guess either way, and so is a file still arriving
at ``deadline`` (``time.monotonic()``); a redirect away from http(s) (e.g. to ``ftp:``) reaches
no file, like too many redirects, so it allows everything. Only the first 512 KiB are read.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from urllib.parse import urlsplit, urlunsplit
from urllib.robotparser import RobotFileParser

import httpx

from taskpost.agent.handlers.base import HandlerError
from taskpost.agent.net.guarded_http import USER_AGENT

MAX_ROBOTS_BYTES = 512 * 1024


def robots_url(url: str) -> str:
    """The robots.txt URL of ``url``'s site (scheme, host and port)."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/robots.txt", "", ""))


def _read(response: httpx.Response, where: str, deadline: float, is_cancelled: Callable[[], bool]) -> bytes:
    body = bytearray()  # one byte at a time must not copy the whole body each time
    for chunk in response.iter_bytes():
        if is_cancelled():
            raise HandlerError("cancelled while reading robots.txt", kind="cancelled")
        if time.monotonic() > deadline:
            raise HandlerError(f"{where}: reading robots.txt took longer than timeout_s", kind="network")
        body += chunk
        if len(body) >= MAX_ROBOTS_BYTES:
            return bytes(body[:MAX_ROBOTS_BYTES])
    return bytes(body)


def robots_allow(
    client: httpx.Client, url: str, *, deadline: float, is_cancelled: Callable[[], bool]
) -> bool:
    """Whether the robots.txt of ``url``'s site lets ``taskpost`` fetch ``url``."""
    where = robots_url(url)
    try:
        with client.stream("GET", where) as response:
            if 400 <= response.status_code < 500:
                return True
            if response.status_code >= 300:
                raise HandlerError(
                    f"{where}: the server answered HTTP {response.status_code}", kind="network"
                )
            body = _read(response, where, deadline, is_cancelled)
    except (httpx.UnsupportedProtocol, httpx.InvalidURL):
        return True  # redirected away from http(s): no reachable file, nothing is disallowed
    except httpx.TransportError as exc:
        raise HandlerError(f"{where}: network error: {exc}", kind="network") from exc
    except httpx.TooManyRedirects:
        return True  # no reachable file: nothing is disallowed
    parser = RobotFileParser()
    parser.parse(body.decode("utf-8", errors="replace").splitlines())
    return parser.can_fetch(USER_AGENT, url)
