"""The blob store contract."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from typing import Protocol

from taskpost.server.errors import PayloadTooLarge


@dataclass(frozen=True)
class StoredBlob:
    key: str
    size: int
    sha256: str


class BlobStore(Protocol):
    """Streams bytes in and out under opaque keys (ASCII letters and digits).

    The caller picks the key (server.services.blob_refs records it before the first byte is
    written, so that a write cut short by a crash can still be found and deleted).
    """

    async def put(self, key: str, chunks: AsyncIterable[bytes], *, max_bytes: int) -> StoredBlob:
        """Store a stream under ``key``, hashing it on the way; PayloadTooLarge past ``max_bytes``.

        Nothing is left under ``key`` when it fails."""

    def open(self, key: str, chunk_size: int = 1 << 20) -> AsyncIterator[bytes]:
        """Stream a stored blob back; FileNotFoundError (on the first read) when there is none."""

    async def delete(self, key: str) -> None:
        """Remove a blob; a missing one is not an error."""

    def local_path(self, key: str) -> str | None:
        """A filesystem path to the blob when there is one (lets the server use sendfile)."""

    async def aclose(self) -> None:
        """Release what the store holds open (connections) when the coordinator stops."""


class Measured:
    """Passes a stream through while counting its size and SHA-256; PayloadTooLarge past ``max_bytes``.

    What every store does with the chunks it is given, whatever it then does with them.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.size = 0
        self._digest = hashlib.sha256()

    async def through(self, chunks: AsyncIterable[bytes]) -> AsyncIterator[bytes]:
        async for chunk in chunks:
            self.size += len(chunk)
            if self.size > self.max_bytes:
                raise PayloadTooLarge(
                    f"file larger than the limit of {self.max_bytes} bytes (TASKPOST_MAX_UPLOAD_BYTES)",
                    limit=self.max_bytes,
                )
            self._digest.update(chunk)
            yield chunk

    def stored(self, key: str) -> StoredBlob:
        return StoredBlob(key=key, size=self.size, sha256=self._digest.hexdigest())
