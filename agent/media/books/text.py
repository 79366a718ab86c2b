"""Plain text and Markdown books: chapters at ``#`` headings, else the whole text as one chapter.

DOCX files arrive here too, as the Markdown that ``agent.media.docx_markdown`` makes of them.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

from taskpost.agent.media.books.model import Book, Chapter, clean

INTRODUCTION = "Introduction"
"""The title of the text before the first chapter heading."""
_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_FENCE = re.compile(r"^\s*(```|~~~)")
_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
_EMPHASIS = re.compile(r"(\*\*|__|\*|_|`)(?=\S)(.+?)(?<=\S)\1")
_LIST_MARKER = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+")
_TABLE_RULE = re.compile(r"^\s*\|?\s*:?-{3,}")
_QUOTE = re.compile(r"^\s*>\s?")


@dataclass(frozen=True)
class _Section:
    level: int
    title: str
    lines: list[str]


def markdown_book(markdown: str, *, title: str | None = None, fallback_title: str = "Text") -> Book:
    """A book from Markdown, one chapter per heading of the chapter level.

    The chapter level is the highest level (fewest ``#``) that occurs at least twice, else the
    highest that occurs at all: a lone ``# Book title`` above ``## Chapter`` headings becomes the
    book's title instead of a chapter of its own. Deeper headings stay in the text, spoken as
    sentences. Text before the first chapter heading is an "Introduction" chapter.
    """
    sections = _sections(markdown)
    levels = Counter(section.level for section in sections if section.level)
    if not levels:
        return Book(title=title, chapters=[Chapter(title or fallback_title, speakable(markdown))])
    repeated = [level for level, count in levels.items() if count >= 2]
    level = min(repeated or levels)
    chapters: list[Chapter] = []
    heading = INTRODUCTION
    body: list[str] = []
    for section in sections:
        if not section.level or section.level > level:  # text, or a heading inside a chapter
            body += ([section.title + "."] if section.level else []) + section.lines
            continue
        if heading != INTRODUCTION or any(line.strip() for line in body):
            chapters.append(Chapter(heading, speakable("\n".join(body))))
        if section.level < level:  # a book title above the chapters
            title = title or section.title
            heading = INTRODUCTION
        else:
            heading = section.title
        body = list(section.lines)
    chapters.append(Chapter(heading, speakable("\n".join(body))))
    return Book(title=title, chapters=chapters)


def _sections(markdown: str) -> list[_Section]:
    """The text split at headings (level 0: the text before the first one). Fenced code is skipped."""
    sections = [_Section(0, "", [])]
    fenced = False
    for line in markdown.replace("\r\n", "\n").split("\n"):
        if _FENCE.match(line):
            fenced = not fenced
            continue
        if fenced:
            continue
        heading = _HEADING.match(line)
        if heading:
            sections.append(_Section(len(heading.group(1)), _inline(heading.group(2)), []))
        else:
            sections[-1].lines.append(line)
    return sections


def _inline(text: str) -> str:
    text = _LINK.sub(r"\1", text)
    return _EMPHASIS.sub(r"\2", text).strip()


def speakable(markdown: str) -> str:
    """Markdown as the text to be read: no markers, links as their text, table cells as phrases."""
    lines = []
    for line in markdown.split("\n"):
        if _TABLE_RULE.match(line) and set(line.strip()) <= set("|-: "):
            continue
        if _LIST_MARKER.match(line) and not line.rstrip().endswith((".", "!", "?", ":", ";", ",")):
            line = line.rstrip() + "."  # a pause after each item, as after a sentence
        line = _QUOTE.sub("", _LIST_MARKER.sub("", line))
        if line.lstrip().startswith("|"):
            cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
            line = ", ".join(cell for cell in cells if cell) + "."
        lines.append(_inline(line))
    return clean("\n".join(lines))
