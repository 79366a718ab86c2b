"""HTTP helpers for file bodies: names, request bodies as streams, blobs as responses.

What happens to the bytes (storing, digests, what references them) is in
server.services.uploads.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

import anyio
from fastapi import Path, Request
from fastapi.responses import FileResponse, StreamingResponse
from starlette.responses import Response

from taskpost.protocol import is_safe_file_name
from taskpost.protocol.fields import FILE_NAME_PATTERN, MAX_FILE_NAME_LENGTH, RESERVED_FILE_NAMES
from taskpost.server.coordinator import Coordinator
from taskpost.server.errors import FileNotFound, InvalidParams

FILE_NAME_SCHEMA: dict[str, Any] = {
    "minLength": 1,
    "maxLength": MAX_FILE_NAME_LENGTH,
    "pattern": FILE_NAME_PATTERN,
    "not": {"enum": sorted(RESERVED_FILE_NAMES)},
}
"""The rule check_name enforces, for the OpenAPI document of a name parameter."""

FileNameParam = Annotated[str, Path(json_schema_extra=FILE_NAME_SCHEMA)]
"""A file name in a path: a name that breaks the rule names no file (404), or is refused (422)."""


def check_name(name: str, field: str = "name") -> str:
    """``name`` if it is one safe path segment (the rule agents apply too); 422 otherwise."""
    if not is_safe_file_name(name):
        raise InvalidParams(
            f"a file name must be 1 to {MAX_FILE_NAME_LENGTH} characters without slashes, NUL or "
            "control characters, and neither '.' nor '..'",
            field=field,
        )
    return name


def body_chunks(request: Request) -> AsyncIterator[bytes]:
    """The request body as it arrives (BodyLimitMiddleware counts it against the upload limit)."""
    return request.stream()


async def blob_response(coord: Coordinator, entry: dict[str, Any]) -> Response:
    """The stored file as a download, or 404 when its blob is gone.

    The blob is opened and its first chunk read before any header goes out: once a 200 is on
    the wire, a missing blob could only cut the body short, which a client reads as a network
    error and retries, where a 404 says what happened.
    """
    headers = {"X-Content-SHA256": entry["sha256"]}
    path = coord.blobs.local_path(entry["blob_key"])
    if path is not None:
        if not await anyio.Path(path).is_file():
            raise _blob_gone(entry)
        return FileResponse(path, filename=entry["name"], headers=headers)
    chunks = coord.blobs.open(entry["blob_key"])
    try:
        first = await anext(chunks, b"")
    except FileNotFoundError:
        raise _blob_gone(entry) from None
    return StreamingResponse(_prepend(first, chunks), headers=headers)


async def _prepend(first: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    if first:
        yield first
    async for chunk in rest:
        yield chunk


def _blob_gone(entry: dict[str, Any]) -> FileNotFound:
    return FileNotFound(f"the stored file {entry['name']!r} is gone from the blob store", name=entry["name"])
