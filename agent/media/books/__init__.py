"""Books for the audiobook task: PDF, DOCX, EPUB, Markdown and text read into chapters of plain text."""

from __future__ import annotations

from pathlib import Path

from taskpost.agent.media.books.docx import docx_book
from taskpost.agent.media.books.epub import epub_book
from taskpost.agent.media.books.formats import SUPPORTED, BookFormat, detect_format
from taskpost.agent.media.books.model import Book, Chapter, finished
from taskpost.agent.media.books.pdf import pdf_book
from taskpost.agent.media.books.text import markdown_book
from taskpost.agent.media.filetypes import read_text

__all__ = ["SUPPORTED", "Book", "BookFormat", "Chapter", "detect_format", "read_book"]


def read_book(path: Path, *, pages_per_chapter: int = 10) -> tuple[BookFormat, Book]:
    """The file's format and its chapters; a non-retryable ``HandlerError`` when it cannot be read."""
    found = detect_format(path)
    if found == BookFormat.PDF:
        return found, pdf_book(path, pages_per_chapter=pages_per_chapter)
    if found == BookFormat.DOCX:
        return found, docx_book(path)
    if found == BookFormat.EPUB:
        return found, epub_book(path)
    book = markdown_book(read_text(path), fallback_title=path.stem)
    return found, finished(book, "text file")
