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
    """Streams bytes in and out under opaque keys."""

    async def put(self, chunks: AsyncIterable[bytes], *, max_bytes: int) -> StoredBlob:
        """Store a stream, hashing it on the way; PayloadTooLarge past ``max_bytes``."""

    def open(self, key: str, chunk_size: int = 1 << 20) -> AsyncIterator[bytes]:
        """Stream a stored blob back."""

    async def delete(self, key: str) -> None:
        """Remove a blob; a missing one is not an error."""

    def local_path(self, key: str) -> str | None:
        """A filesystem path to the blob when there is one (lets the server use sendfile)."""
