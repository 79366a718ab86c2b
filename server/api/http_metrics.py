"""HTTP request latency by route template, method and status: a pure ASGI middleware.

Pure ASGI rather than Starlette's BaseHTTPMiddleware, which runs the app in a task of its own
and buffers the response; this one only watches ``http.response.start`` go by. Event streams
are left out: their duration is how long someone watched, not how fast the coordinator was.
"""

from __future__ import annotations

import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from taskpost.server.metrics import Metrics

UNMATCHED = "unmatched"
"""The route label of a request no route took: unknown paths, and those refused before routing
(401 and 429 from the auth middleware, 413 from the body limits)."""


class HttpMetricsMiddleware:
    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the server answers when the app raises before it started a response
        streaming = False

        async def watching_send(message: Message) -> None:
            nonlocal status, streaming
            if message["type"] == "http.response.start":
                status = message["status"]
                streaming = _is_event_stream(message.get("headers", ()))
            await send(message)

        try:
            await self.app(scope, receive, watching_send)
        finally:
            if not streaming:
                seconds = time.perf_counter() - started
                self.metrics.http_request(route_template(scope), scope["method"], status, seconds)


def _is_event_stream(headers: Any) -> bool:
    for name, value in headers:
        if name.lower() == b"content-type":
            return bytes(value).split(b";", 1)[0].strip().lower() == b"text/event-stream"
    return False


def route_template(scope: Scope) -> str:
    """The matched route's path template, e.g. ``/api/v1/jobs/{job_id}``; never the raw path,
    whose ids would make a label set per job.

    Routers included with a prefix may leave their own route in the scope, whose template lacks
    the prefix (FastAPI keeps included routers nested): the prefix is then the part of the path
    in front of what the route's pattern matches.
    """
    route = scope.get("route")
    template = getattr(route, "path", None)
    pattern = getattr(route, "path_regex", None)
    if not isinstance(template, str) or pattern is None:
        return UNMATCHED
    path: str = scope.get("path", "")
    start = 0
    while start != -1:
        if pattern.fullmatch(path[start:]):
            return path[:start] + template
        start = path.find("/", start + 1)
    return template
