"""DOCX books: chapters at the document's headings (Heading 1, else Heading 2, ...)."""

from __future__ import annotations

from pathlib import Path

from taskpost.agent.handlers.base import HandlerError
from taskpost.agent.media.books.model import Book, bad_input, finished
from taskpost.agent.media.books.text import markdown_book
from taskpost.agent.media.docx_markdown import docx_document


def docx_book(path: Path) -> Book:
    """The DOCX body through its Markdown form, chaptered like a Markdown file."""
    try:
        converted = docx_document(path)
    except HandlerError as exc:
        if exc.kind == "corrupt_input":
            raise bad_input(exc.message) from exc
        raise
    book = markdown_book(converted.markdown, title=converted.title, fallback_title=path.stem)
    return finished(book, "DOCX file")
