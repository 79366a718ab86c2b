"""Files coming in: client uploads, an attempt's outputs, and the files of a multipart submit.

Each is streamed into the blob store under a reserved key (server.services.blob_refs), checked
against the digest its sender declared, and recorded in one transaction with what uses it. A
refused file (a digest that differs, a lease that is no longer live, a submit that fails) is
deleted from the store before the error is answered.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterable
from types import TracebackType
from typing import Any

from sqlalchemy import insert

from taskpost.protocol import SHA256_HEADER, FileInfo, UploadPublic
from taskpost.server.blobs import StoredBlob
from taskpost.server.coordinator import Coordinator
from taskpost.server.errors import InvalidParams
from taskpost.server.services import attempt_outputs, blob_refs, leases
from taskpost.server.services.jobs import UPLOADS


def check_digest(blob: StoredBlob, declared: str | None) -> None:
    """InvalidParams naming the header when the sender declared another SHA-256."""
    if declared and declared.strip().lower() != blob.sha256:
        raise InvalidParams(
            f"the body's sha256 is {blob.sha256}, not {declared} as {SHA256_HEADER} says",
            field=SHA256_HEADER,
        )


async def store_upload(
    coord: Coordinator, namespace: str, name: str, chunks: AsyncIterable[bytes], declared_sha256: str | None
) -> UploadPublic:
    """Keep a file for jobs of ``namespace`` to name as an input (for TASKPOST_UPLOAD_GRACE_S
    after it was uploaded or last named)."""
    blob = await blob_refs.write(coord, chunks)
    upload_id = str(uuid.uuid4())
    async with blob_refs.discarded_on_error(coord, [blob.key]):
        check_digest(blob, declared_sha256)
        now = coord.clock()
        async with coord.db.write() as conn:
            await blob_refs.settle(conn, [blob.key], now)
            await conn.execute(
                insert(UPLOADS).values(
                    id=upload_id,
                    namespace=namespace,
                    name=name,
                    blob_key=blob.key,
                    size=blob.size,
                    sha256=blob.sha256,
                    created_at=now,
                    last_used_at=now,
                )
            )
            await blob_refs.add(conn, [blob.key])
    return UploadPublic(upload_id=upload_id, size=blob.size, sha256=blob.sha256)


async def store_output(
    coord: Coordinator,
    job_id: str,
    token: str | None,
    name: str,
    chunks: AsyncIterable[bytes],
    declared_sha256: str | None,
) -> FileInfo:
    """Keep an output of the attempt holding ``token``; it becomes the job's if that attempt
    succeeds. A second upload of the same name in the attempt replaces the first."""
    await leases.require_lease(coord, job_id, token)  # before a byte of the body is read
    assert token is not None  # require_lease refuses a missing token
    blob = await blob_refs.write(coord, chunks)
    async with blob_refs.discarded_on_error(coord, [blob.key]):
        check_digest(blob, declared_sha256)
        now = coord.clock()
        async with coord.db.write() as conn:
            # The lease may have been lost while the body streamed in.
            await leases.check_lease(conn, coord, job_id, token)
            await blob_refs.settle(conn, [blob.key], now)
            await attempt_outputs.put(conn, job_id, token, name, blob, now)
    return FileInfo(name=name, size=blob.size, sha256=blob.sha256)


class StagedFiles:
    """The files of a multipart submit, stored as they arrive, before the job exists.

    Used as ``async with``: on the way out, every file the submit did not take (it failed, or
    its idempotency key returned an existing job) is deleted.
    """

    def __init__(self, coord: Coordinator) -> None:
        self.coord = coord
        self.inputs: list[dict[str, Any]] = []
        """As job inputs: name, blob_key, size, sha256."""
        self._kept = False

    async def add(self, name: str, chunks: AsyncIterable[bytes]) -> None:
        if any(entry["name"] == name for entry in self.inputs):
            raise InvalidParams(f"two files are named {name!r}: input names must be unique", field="inputs")
        blob = await blob_refs.write(self.coord, chunks)
        self.inputs.append({"name": name, "blob_key": blob.key, "size": blob.size, "sha256": blob.sha256})

    def keep(self) -> None:
        """The job that uses the files was created: they are its now."""
        self._kept = True

    async def __aenter__(self) -> StagedFiles:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if not self._kept:
            # Only blobs that nothing references are deleted, so this is safe in every case.
            await blob_refs.discard(self.coord, [entry["blob_key"] for entry in self.inputs])
