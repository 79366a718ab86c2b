"""A blob store on a local directory: the default."""

from __future__ import annotations

import asyncio
import hashlib
import os
import uuid
from collections.abc import AsyncIterable, AsyncIterator
from pathlib import Path
from typing import BinaryIO

from server.blobs.base import StoredBlob
from server.errors import PayloadTooLarge


class LocalBlobStore:
    """Blobs as files under ``root/ab/abcdef...``; written to a temporary name, then renamed."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        if not key.isalnum():
            raise ValueError(f"invalid blob key {key!r}")
        return self.root / key[:2] / key

    async def put(self, chunks: AsyncIterable[bytes], *, max_bytes: int) -> StoredBlob:
        key = uuid.uuid4().hex
        final = self._path(key)
        final.parent.mkdir(parents=True, exist_ok=True)
        partial = final.with_suffix(".part")
        digest = hashlib.sha256()
        size = 0
        handle = await asyncio.to_thread(open, partial, "wb")
        try:
            async for chunk in chunks:
                size += len(chunk)
                if size > max_bytes:
                    raise PayloadTooLarge(
                        f"file larger than the limit of {max_bytes} bytes (TASKPOST_MAX_UPLOAD_BYTES)",
                        limit=max_bytes,
                    )
                digest.update(chunk)
                await asyncio.to_thread(handle.write, chunk)
            await asyncio.to_thread(_flush_and_sync, handle)
        except BaseException:
            handle.close()
            partial.unlink(missing_ok=True)
            raise
        handle.close()
        os.replace(partial, final)
        return StoredBlob(key=key, size=size, sha256=digest.hexdigest())

    async def open(self, key: str, chunk_size: int = 1 << 20) -> AsyncIterator[bytes]:
        handle = await asyncio.to_thread(open, self._path(key), "rb")
        try:
            while chunk := await asyncio.to_thread(handle.read, chunk_size):
                yield chunk
        finally:
            handle.close()

    async def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def local_path(self, key: str) -> str | None:
        return str(self._path(key))


def _flush_and_sync(handle: BinaryIO) -> None:
    handle.flush()
    os.fsync(handle.fileno())
