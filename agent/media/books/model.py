"""A book as the audiobook task reads it (a title, chapters of plain text) and the errors of reading one."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from taskpost.agent.handlers.base import HandlerError

_WHITESPACE = re.compile(r"[ \t\f\v\u00a0]+")
_BLANK_LINES = re.compile(r"\n\s*\n+")


@dataclass(frozen=True)
class Chapter:
    """One chapter: its title (spoken first) and its body text."""

    title: str
    text: str

    @property
    def chars(self) -> int:
        return len(self.title) + len(self.text)


@dataclass
class Book:
    """A document's readable content, chapter by chapter, in reading order."""

    title: str | None
    chapters: list[Chapter] = field(default_factory=list)

    @property
    def chars(self) -> int:
        return sum(chapter.chars for chapter in self.chapters)


def clean(text: str) -> str:
    """Single spaces inside lines, paragraphs kept apart by one blank line, no blank ends."""
    lines = [_WHITESPACE.sub(" ", line).strip() for line in text.replace("\r\n", "\n").split("\n")]
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()


def bad_input(message: str) -> HandlerError:
    """The file cannot be read as the format it claims to be."""
    return HandlerError(message, retryable=False, kind="bad_input")


def no_text(message: str) -> HandlerError:
    """The file reads, but holds nothing to speak."""
    return HandlerError(message, retryable=False, kind="no_text")


def finished(book: Book, what: str) -> Book:
    """``book`` without chapters that have no words; ``no_text`` when nothing is left."""
    kept = [chapter for chapter in book.chapters if any(char.isalnum() for char in chapter.text)]
    if not kept:
        raise no_text(f"the {what} has no text to read aloud")
    return Book(title=book.title, chapters=kept)
