"""Streaming file bodies in and out of the blob store."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import Request
from fastapi.responses import FileResponse, StreamingResponse
from sqlalchemy import insert
from starlette.datastructures import UploadFile
from starlette.responses import Response

from protocol import UploadPublic
from server.blobs import StoredBlob
from server.coordinator import Coordinator
from server.db.models import Upload
from server.errors import InvalidParams, PayloadTooLarge

UPLOADS = Upload.__table__  # type: ignore[attr-defined]


def check_declared_length(request: Request, limit: int) -> None:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(
            f"file of {declared} bytes is over the limit of {limit} bytes (TASKPOST_MAX_UPLOAD_BYTES)",
            limit=limit,
        )


def check_name(name: str) -> str:
    if not name or "/" in name or "\\" in name or "\x00" in name or name in (".", ".."):
        raise InvalidParams("a file name must be non-empty and contain no slashes", field="name")
    return name


async def store_request_body(coord: Coordinator, request: Request) -> StoredBlob:
    check_declared_length(request, coord.settings.max_upload_bytes)
    return await coord.blobs.put(request.stream(), max_bytes=coord.settings.max_upload_bytes)


async def _upload_chunks(upload: UploadFile) -> AsyncIterator[bytes]:
    while chunk := await upload.read(1 << 20):
        yield chunk


async def record_upload(coord: Coordinator, name: str, blob: StoredBlob, namespace: str) -> UploadPublic:
    upload_id = str(uuid.uuid4())
    async with coord.db.write() as conn:
        await conn.execute(
            insert(UPLOADS).values(
                id=upload_id,
                namespace=namespace,
                name=name,
                blob_key=blob.key,
                size=blob.size,
                sha256=blob.sha256,
                created_at=coord.clock(),
            )
        )
    return UploadPublic(upload_id=upload_id, size=blob.size, sha256=blob.sha256)


async def store_form_file(coord: Coordinator, upload: UploadFile, namespace: str) -> tuple[str, UploadPublic]:
    name = check_name(upload.filename or "")
    blob = await coord.blobs.put(_upload_chunks(upload), max_bytes=coord.settings.max_upload_bytes)
    return name, await record_upload(coord, name, blob, namespace)


def blob_response(coord: Coordinator, entry: dict[str, Any]) -> Response:
    headers = {"X-Content-SHA256": entry["sha256"]}
    path = coord.blobs.local_path(entry["blob_key"])
    if path is not None:
        return FileResponse(path, filename=entry["name"], headers=headers)
    return StreamingResponse(coord.blobs.open(entry["blob_key"]), headers=headers)
