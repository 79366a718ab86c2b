"""HTTP helpers for file bodies: names, request bodies as streams, blobs as responses.

What happens to the bytes (storing, digests, what references them) is in
server.services.uploads.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import Path, Request
from fastapi.responses import FileResponse, StreamingResponse
from starlette.responses import Response

from protocol import is_safe_file_name
from protocol.fields import FILE_NAME_PATTERN, MAX_FILE_NAME_LENGTH, RESERVED_FILE_NAMES
from server.coordinator import Coordinator
from server.errors import InvalidParams

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


def blob_response(coord: Coordinator, entry: dict[str, Any]) -> Response:
    headers = {"X-Content-SHA256": entry["sha256"]}
    path = coord.blobs.local_path(entry["blob_key"])
    if path is not None:
        return FileResponse(path, filename=entry["name"], headers=headers)
    return StreamingResponse(coord.blobs.open(entry["blob_key"]), headers=headers)
