"""Documents as Markdown and plain text: the shared result type and the HTML, text and page converters.

DOCX has its own module (``agent.media.docx_markdown``); PDFs and images are read page by page
(``agent.media.pages``) and assembled here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from taskpost.agent.handlers.base import HandlerError, MissingExtra
from taskpost.agent.media.pages import PageText

if TYPE_CHECKING:
    from bs4 import BeautifulSoup

DROPPED_TAGS = ["script", "style", "noscript", "template", "iframe", "object", "embed", "svg", "head"]
HEADING_TAGS = ["h1", "h2", "h3", "h4", "h5", "h6"]
BLOCK_TAGS = [*HEADING_TAGS, "p", "div", "li", "tr", "br", "pre", "blockquote", "section", "article", "dd"]
_BLANK_RUNS = re.compile(r"\n[ \t]*(?:\n[ \t]*)+\n")


@dataclass(frozen=True)
class Heading:
    level: int
    title: str

    def to_json(self) -> dict[str, Any]:
        return {"level": self.level, "title": self.title}


@dataclass
class Converted:
    """A document as Markdown and as plain text, with an outline of its structure."""

    markdown: str
    text: str
    title: str | None = None
    headings: list[Heading] = field(default_factory=list)
    page_count: int | None = None
    pages: list[PageText] = field(default_factory=list)


def tidy(text: str) -> str:
    """No trailing spaces, at most one blank line in a row, no blank lines at either end."""
    text = "\n".join(line.rstrip() for line in text.replace("\r\n", "\n").split("\n"))
    return _BLANK_RUNS.sub("\n\n", text).strip("\n")


def text_document(text: str) -> Converted:
    """Plain text: the Markdown is the text itself."""
    clean = tidy(text)
    return Converted(markdown=clean, text=clean)


def pages_document(pages: list[PageText], *, title: str | None = None) -> Converted:
    """A paged document: one ``## Page N`` section per page."""
    parts = [f"# {title}"] if title else []
    headings = [Heading(1, title)] if title else []
    for page in pages:
        heading = f"Page {page.number}"
        headings.append(Heading(2, heading))
        parts.append(f"## {heading}\n\n{page.text}" if page.text.strip() else f"## {heading}")
    return Converted(
        markdown=tidy("\n\n".join(parts)),
        text=tidy("\n\n".join(page.text for page in pages)),
        title=title,
        headings=headings,
        page_count=len(pages),
        pages=pages,
    )


def html_document(html: str) -> Converted:
    """HTML through markdownify, without scripts, styles or the ``<head>``."""
    try:
        from bs4 import BeautifulSoup
        from markdownify import MarkdownConverter
    except ImportError as exc:
        raise MissingExtra("docs", package="markdownify") from exc
    try:
        soup = BeautifulSoup(html, "html.parser")
    except Exception as exc:  # html.parser is lenient; anything it rejects is unreadable
        raise HandlerError(f"unreadable HTML ({exc})", retryable=False, kind="corrupt_input") from exc
    title_tag = soup.find("title")
    title = title_tag.get_text(" ", strip=True) if title_tag is not None else None
    for tag in soup(DROPPED_TAGS):
        tag.decompose()
    headings = [
        Heading(int(tag.name[1]), text)
        for tag in soup.find_all(HEADING_TAGS)
        if (text := tag.get_text(" ", strip=True))
    ]
    markdown = MarkdownConverter(heading_style="ATX", bullets="-", strip=["img"]).convert_soup(soup)
    return Converted(
        markdown=tidy(markdown),
        text=_html_text(soup),
        title=title or (headings[0].title if headings else None),
        headings=headings,
    )


def _html_text(soup: BeautifulSoup) -> str:
    """The visible text: one line per block element, spaces collapsed. Changes ``soup``."""
    for tag in soup.find_all(BLOCK_TAGS):
        tag.append("\n")
    for tag in soup.find_all(["td", "th"]):
        tag.append(" ")
    lines = (" ".join(line.split()) for line in soup.get_text("").split("\n"))
    return tidy("\n".join(lines))
