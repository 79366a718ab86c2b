"""Byte streams of a given size, made as they are read, and their expected digests."""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator

MiB = 1024**2
BLOCK = os.urandom(MiB)


async def stream(size: int, block: bytes = BLOCK) -> AsyncIterator[bytes]:
    """``size`` bytes as chunks of ``block`` (the last one shorter), never all at once."""
    while size > 0:
        chunk = block[:size]
        size -= len(chunk)
        yield chunk


def expected_digest(size: int, block: bytes = BLOCK) -> str:
    """The sha256 of ``stream(size, block)``."""
    digest = hashlib.sha256()
    for start in range(0, size, len(block)):
        digest.update(block[: min(len(block), size - start)])
    return digest.hexdigest()
