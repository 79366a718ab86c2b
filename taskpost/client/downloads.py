"""Where a job's output lands, and the check that it arrived whole."""

from __future__ import annotations

import hashlib
from pathlib import Path

from taskpost.client.errors import ChecksumMismatch, InvalidParams
from taskpost.protocol import SHA256_HEADER, FileInfo


def target(directory: Path, output: FileInfo) -> Path:
    """``directory / name``; a name that would leave the directory is refused."""
    path = directory / output.name
    if path.resolve().parent != directory.resolve():
        raise InvalidParams(f"output name {output.name!r} is not a plain file name", code="bad_output_name")
    return path


def partial(path: Path) -> Path:
    """Where a download is written until its digest is checked."""
    return path.with_name(path.name + ".part")


def check(output: FileInfo, announced: str | None, digest: hashlib._Hash) -> None:
    """The SHA-256 of what arrived must equal the job's record and the X-Content-SHA256 header."""
    got = digest.hexdigest()
    expected = {output.sha256.lower(), *([announced.lower()] if announced else [])}
    if expected != {got}:
        raise ChecksumMismatch(
            f"output {output.name!r}: got SHA-256 {got}, expected {' and '.join(sorted(expected))} "
            f"({SHA256_HEADER})",
            code="checksum_mismatch",
        )
