"""Which kind of book a file is: by its first bytes, its zip members and its name."""

from __future__ import annotations

import zipfile
from enum import StrEnum
from pathlib import Path

from taskpost.agent.handlers.base import HandlerError
from taskpost.agent.media.filetypes import FileKind, detect_kind

SUPPORTED = "PDF, DOCX, EPUB, Markdown or plain text"
MARKDOWN_SUFFIXES = {".md", ".markdown"}
DESCRIPTIONS: dict[FileKind | None, str] = {FileKind.IMAGE: "an image", FileKind.HTML: "an HTML page"}


class BookFormat(StrEnum):
    PDF = "pdf"
    DOCX = "docx"
    EPUB = "epub"
    MARKDOWN = "markdown"
    TEXT = "text"


def detect_format(path: Path) -> BookFormat:
    """The book format of ``path``; ``unsupported_format`` for anything else (images, HTML, archives)."""
    kind = detect_kind(path)
    if kind == FileKind.PDF:
        return BookFormat.PDF
    if kind == FileKind.DOCX:
        return BookFormat.DOCX
    if kind is None and _is_epub(path):
        return BookFormat.EPUB
    if kind == FileKind.TEXT:
        return BookFormat.MARKDOWN if path.suffix.lower() in MARKDOWN_SUFFIXES else BookFormat.TEXT
    suffix = path.suffix.lower()
    if suffix in {".pdf", ".docx", ".epub"}:
        raise HandlerError(
            f"{path.name} is not a readable {suffix[1:].upper()} file", retryable=False, kind="bad_input"
        )
    found = DESCRIPTIONS.get(kind, "an unknown binary format")
    raise HandlerError(
        f"{path.name} is {found}; the audiobook task reads {SUPPORTED}",
        retryable=False,
        kind="unsupported_format",
    )


def _is_epub(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            if "mimetype" in names and archive.read("mimetype").strip() == b"application/epub+zip":
                return True
            return "META-INF/container.xml" in names
    except zipfile.BadZipFile:
        return False
