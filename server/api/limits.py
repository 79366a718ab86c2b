"""Request bodies are read only up to a limit: a pure ASGI middleware.

A JSON body is read up to ``max_json_bytes`` before the app sees it, counting bytes as they
arrive (a chunked body has no Content-Length to trust), and answered 413 past that without
running the route: nothing is parsed and nothing committed. A declared Content-Length over the
limit is answered at once, without reading a byte. The file routes stream their bodies to the
blob store, so they are not buffered here; their bytes are counted against ``max_upload_bytes``
as the route reads them.

Authentication runs in front of this middleware (see ``server.app``): an unauthenticated body
is refused before it is read at all.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from taskpost.protocol import API_PREFIX
from taskpost.server.api.errors import error_response
from taskpost.server.errors import PayloadTooLarge

_FILE_ROUTES = (
    ("POST", re.compile(re.escape(API_PREFIX) + r"/uploads/?")),
    ("PUT", re.compile(re.escape(API_PREFIX) + r"/tasks/[^/]+/outputs/[^/]+/?")),
)
_MULTIPART_SUBMIT = ("POST", re.compile(re.escape(API_PREFIX) + r"/jobs/?"))


class BodyTooLarge(PayloadTooLarge):
    """The request body is larger than the coordinator accepts."""


def is_file_route(scope: Scope) -> bool:
    """Whether the request streams a file: an upload, an output, or a multipart submit."""
    method: str = scope.get("method", "")
    path: str = scope.get("path", "")
    if any(method == m and pattern.fullmatch(path) for m, pattern in _FILE_ROUTES):
        return True
    submit_method, submit_path = _MULTIPART_SUBMIT
    return (
        method == submit_method
        and submit_path.fullmatch(path) is not None
        and _header(scope, b"content-type").lower().startswith("multipart/")
    )


def _header(scope: Scope, name: bytes) -> str:
    for key, value in scope.get("headers", []):
        if key == name:
            return str(value.decode("latin-1"))
    return ""


def _declared_length(scope: Scope) -> int | None:
    declared = _header(scope, b"content-length").strip()
    return int(declared) if declared.isdigit() else None


class BodyLimitMiddleware:
    """413 ``payload_too_large`` for a body over its route's limit, found out while it streams."""

    def __init__(self, app: ASGIApp, max_json_bytes: int, max_upload_bytes: int) -> None:
        self.app = app
        self.max_json_bytes = max_json_bytes
        self.max_upload_bytes = max_upload_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        streamed = is_file_route(scope)
        limit = self.max_upload_bytes if streamed else self.max_json_bytes
        declared = _declared_length(scope)
        if declared is not None and declared > limit:
            await self._refuse(scope, receive, send, limit, streamed)
            return
        if streamed:
            await self._stream(scope, receive, send, limit)
            return
        try:
            body = await _read_up_to(receive, limit)
        except _ClientGone:
            return  # nobody to answer, and a partial body must not reach a route
        if body is None:
            await self._refuse(scope, receive, send, limit, streamed)
            return
        await self.app(scope, _replay(body, receive), send)

    async def _stream(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        started = False

        async def send_and_note(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, _counted(receive, limit), send_and_note)
        except BodyTooLarge:
            # The app's own error handler answers it; this is for a route that let it through.
            if started:
                raise
            await self._refuse(scope, receive, send, limit, streamed=True)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, limit: int, streamed: bool) -> None:
        setting = "TASKPOST_MAX_UPLOAD_BYTES" if streamed else "TASKPOST_MAX_JSON_BYTES"
        what = "file" if streamed else "JSON body"
        response = error_response(
            413,
            BodyTooLarge.code,
            f"the {what} is over the limit of {limit} bytes ({setting})",
            {"limit": limit},
            # The rest of the body is never read, so the connection cannot carry another request.
            headers={"Connection": "close"},
        )
        await response(scope, receive, send)


class _ClientGone(Exception):
    """The client disconnected before its body was complete."""


async def _read_up_to(receive: Receive, limit: int) -> bytes | None:
    """The whole body, or None as soon as it passes ``limit`` bytes."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            raise _ClientGone
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive that gives the buffered body once, then whatever the client sends next."""
    delivered = False

    async def replay() -> Message:
        nonlocal delivered
        if delivered:
            return await receive()
        delivered = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


def _counted(receive: Receive, limit: int) -> Callable[[], Awaitable[Message]]:
    size = 0

    async def counted() -> Message:
        nonlocal size
        message = await receive()
        if message["type"] == "http.request":
            size += len(message.get("body", b""))
            if size > limit:
                raise BodyTooLarge(
                    f"the file is over the limit of {limit} bytes (TASKPOST_MAX_UPLOAD_BYTES)", limit=limit
                )
        return message

    return counted
