"""The blob store contract."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from typing import Protocol


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
