"""What kind of file a task got, judged by its first bytes (and, for markup, its name)."""

from __future__ import annotations

import codecs
import zipfile
from enum import StrEnum
from pathlib import Path

SNIFF_BYTES = 8192

IMAGE_SIGNATURES = (
    b"\x89PNG\r\n\x1a\n",
    b"\xff\xd8\xff",  # JPEG
    b"II*\x00",  # TIFF, little-endian
    b"MM\x00*",  # TIFF, big-endian
    b"GIF87a",
    b"GIF89a",
    b"BM",
)
TEXT_CONTROLS = frozenset(b"\t\n\r\f")
HTML_STARTS = ("<!doctype html", "<html", "<head", "<body", "<!--")
HTML_SUFFIXES = {".html", ".htm", ".xhtml"}


class FileKind(StrEnum):
    PDF = "pdf"
    IMAGE = "image"
    DOCX = "docx"
    HTML = "html"
    TEXT = "text"


def detect_kind(path: Path) -> FileKind | None:
    """The kind of ``path``, or None when it is none of the kinds we read."""
    with path.open("rb") as fh:
        head = fh.read(SNIFF_BYTES)
    if head.startswith(b"%PDF-") or b"%PDF-" in head[:1024]:
        return FileKind.PDF
    if head.startswith(IMAGE_SIGNATURES) or (head[:4] == b"RIFF" and head[8:12] == b"WEBP"):
        return FileKind.IMAGE
    if head.startswith(b"PK\x03\x04"):
        return FileKind.DOCX if _is_docx(path) else None
    text = _as_text(head)
    if text is None:
        return None
    start = text.lstrip("\ufeff \t\r\n").lower()
    if start.startswith(HTML_STARTS) or path.suffix.lower() in HTML_SUFFIXES or "<html" in start[:2048]:
        return FileKind.HTML
    return FileKind.TEXT


def _is_docx(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as archive:
            return "word/document.xml" in archive.namelist()
    except zipfile.BadZipFile:
        return False


def _as_text(head: bytes) -> str | None:
    """``head`` decoded as UTF-8 (a character cut at the end is fine), None if it is binary."""
    if b"\x00" in head:
        return None
    try:
        return codecs.getincrementaldecoder("utf-8-sig")().decode(head, final=False)
    except UnicodeDecodeError:
        pass
    if any(byte < 0x20 and byte not in TEXT_CONTROLS for byte in head):
        return None
    return head.decode("latin-1")


def read_text(path: Path) -> str:
    """A text file's content: UTF-8 (with or without BOM), else Latin-1."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("latin-1")
