"""A blob store on a local directory: the default."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterable, AsyncIterator
from pathlib import Path
from typing import BinaryIO

from taskpost.server.blobs.base import Measured, StoredBlob

# Blobs are the clients' files: only the coordinator's user may read them.
_DIR_MODE = 0o700
_FILE_MODE = 0o600


def _private_dir(path: Path) -> None:
    try:
        path.mkdir(parents=True, mode=_DIR_MODE)
    except FileExistsError:
        return
    path.chmod(_DIR_MODE)  # mkdir's mode is masked by the umask


def _open_private(path: Path) -> BinaryIO:
    return os.fdopen(os.open(path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, _FILE_MODE), "wb")


class LocalBlobStore:
    """Blobs as files under ``root/ab/abcdef...``; written to a temporary name, then renamed."""

    def __init__(self, root: Path) -> None:
        self.root = root
        _private_dir(self.root)

    def _path(self, key: str) -> Path:
        if not key.isalnum():
            raise ValueError(f"invalid blob key {key!r}")
        return self.root / key[:2] / key

    async def put(self, key: str, chunks: AsyncIterable[bytes], *, max_bytes: int) -> StoredBlob:
        final = self._path(key)
        _private_dir(final.parent)
        partial = final.with_suffix(".part")
        measured = Measured(max_bytes)
        handle = await asyncio.to_thread(_open_private, partial)
        try:
            async for chunk in measured.through(chunks):
                await asyncio.to_thread(handle.write, chunk)
            await asyncio.to_thread(_flush_and_sync, handle)
        except BaseException:
            handle.close()
            partial.unlink(missing_ok=True)
            raise
        handle.close()
        os.replace(partial, final)
        return measured.stored(key)

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

    async def aclose(self) -> None:
        """Nothing to release: every file is closed when its operation ends."""


def _flush_and_sync(handle: BinaryIO) -> None:
    handle.flush()
    os.fsync(handle.fileno())
