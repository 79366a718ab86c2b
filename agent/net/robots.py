"""robots.txt: whether a site lets the agent (user agent ``taskpost``) fetch a URL (RFC 9309).

The file is fetched through the caller's guarded client, so it passes the same address checks
as the page. A 4xx answer (no file) allows everything; a 5xx answer or an unreachable server is
a retryable ``network`` error rather than a guess either way. Only the first 512 KiB are read.
"""

from __future__ import annotations

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


def _read(response: httpx.Response) -> bytes:
    body = b""
    for chunk in response.iter_bytes():
        body += chunk
        if len(body) >= MAX_ROBOTS_BYTES:
            return body[:MAX_ROBOTS_BYTES]
    return body


def robots_allow(client: httpx.Client, url: str) -> bool:
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
            body = _read(response)
    except httpx.TransportError as exc:
        raise HandlerError(f"{where}: network error: {exc}", kind="network") from exc
    except httpx.TooManyRedirects:
        return True  # no reachable file: nothing is disallowed
    parser = RobotFileParser()
    parser.parse(body.decode("utf-8", errors="replace").splitlines())
    return parser.can_fetch(USER_AGENT, url)
