"""PDF books: chapters from the outline (bookmarks), else fixed page ranges."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from taskpost.agent.handlers.base import HandlerError
from taskpost.agent.media.books.model import Book, Chapter, bad_input, clean, finished
from taskpost.agent.media.pdf import PdfFile

_PAGE_NUMBER = re.compile(r"\s*(?:page\s+)?\d{1,5}(?:\s*(?:/|of)\s*\d{1,5})?\s*", re.IGNORECASE)


@dataclass(frozen=True)
class OutlineEntry:
    title: str
    page: int
    """0-based."""


class OutlinedPdf(PdfFile):
    """A PDF file that also reads its outline."""

    def outline(self) -> list[OutlineEntry]:
        """The top-level outline entries that point at a page, in page order."""
        entries: list[tuple[int, OutlineEntry]] = []
        for bookmark in self._pdf.get_toc():
            dest = bookmark.get_dest()
            index = dest.get_index() if dest is not None else None
            title = " ".join(str(bookmark.get_title() or "").split())
            if index is not None and title and 0 <= index < len(self):
                entries.append((int(bookmark.level), OutlineEntry(title, int(index))))
        if not entries:
            return []
        top = min(level for level, _ in entries)
        return sorted((entry for level, entry in entries if level == top), key=lambda entry: entry.page)


def pdf_book(path: Path, *, pages_per_chapter: int) -> Book:
    """The PDF's text, in outline chapters when it has an outline, else ``pages_per_chapter`` pages each."""
    try:
        pdf = OutlinedPdf(path, extra="audiobook")
        with pdf:
            pages = [without_page_number(pdf.text_layer(index)) for index in range(len(pdf))]
            outline = pdf.outline()
            title = pdf.title
    except HandlerError as exc:
        if exc.kind == "corrupt_input":
            raise bad_input(exc.message) from exc
        raise
    if not any(page.strip() for page in pages):
        raise HandlerError(
            "the PDF has no text layer (scanned pages?): run the document task to OCR it first",
            retryable=False,
            kind="no_text",
        )
    chapters = outline_chapters(pages, outline) if outline else page_chapters(pages, pages_per_chapter)
    return finished(Book(title=title, chapters=chapters), "PDF")


def outline_chapters(pages: list[str], outline: list[OutlineEntry]) -> list[Chapter]:
    """One chapter per outline entry, from its title on its page to the next entry's title.

    A title found on its page cuts the text there (two chapters may share a page) and is left out of
    the body, since it is spoken as the chapter's title. Text before the first entry is a "Front
    matter" chapter.
    """
    full = "\n".join(pages)
    page_starts = [0]
    for page in pages[:-1]:
        page_starts.append(page_starts[-1] + len(page) + 1)
    cuts: list[tuple[int, int]] = []  # (where the title starts, where the body starts)
    for entry in outline:
        floor = max(page_starts[entry.page], cuts[-1][1] if cuts else 0)
        end = page_starts[entry.page] + len(pages[entry.page])
        found = _title_pattern(entry.title).search(full, floor, max(floor, end))
        cuts.append(found.span() if found else (floor, floor))
    chapters = []
    if text := clean(full[: cuts[0][0]]):
        chapters.append(Chapter("Front matter", text))
    for number, (entry, (_, body_start)) in enumerate(zip(outline, cuts, strict=True)):
        body_end = cuts[number + 1][0] if number + 1 < len(cuts) else len(full)
        chapters.append(Chapter(entry.title, clean(full[body_start:body_end])))
    return chapters


def _title_pattern(title: str) -> re.Pattern[str]:
    """The title as printed on the page: any case, any run of whitespace between its words."""
    return re.compile(r"\s+".join(re.escape(word) for word in title.split()), re.IGNORECASE)


def page_chapters(pages: list[str], per_chapter: int) -> list[Chapter]:
    """Chapters of ``per_chapter`` pages each, titled by their page range."""
    chapters = []
    for first in range(0, len(pages), per_chapter):
        last = min(first + per_chapter, len(pages))
        title = f"Page {first + 1}" if last == first + 1 else f"Pages {first + 1} to {last}"
        chapters.append(Chapter(title, clean("\n".join(pages[first:last]))))
    return chapters


def without_page_number(page: str) -> str:
    """The page's text without a first or last line that is only a page number ("12", "Page 3 of 9")."""
    lines = page.split("\n")
    if lines and _PAGE_NUMBER.fullmatch(lines[-1]):
        lines.pop()
    if lines and _PAGE_NUMBER.fullmatch(lines[0]):
        lines.pop(0)
    return "\n".join(lines)
