"""The main text of an HTML page without navigation, footers and other boilerplate (trafilatura).

``extract_page`` returns the text as Markdown (headings, lists) and as plain text, and the page's
metadata: title, author and date from trafilatura, the language from ``<html lang>`` when
trafilatura has none (it detects languages only with the optional py3langid).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from taskpost.agent.media.extras import require


@dataclass(frozen=True)
class PageText:
    markdown: str
    text: str
    title: str | None
    author: str | None
    date: str | None
    language: str | None
    sitename: str | None
    description: str | None


def _trafilatura() -> Any:
    return require("trafilatura", "web")


def _clean(value: object) -> str | None:
    text = str(value).strip() if value is not None else ""
    return text or None


def extract_page(body: bytes, url: str) -> PageText | None:
    """The main text and metadata of the page ``body`` fetched from ``url``; None if it has no text."""
    trafilatura = _trafilatura()
    # The page is parsed once (decoding and parsing up to max_size_mb of HTML is the costly part).
    # Some trafilatura versions prune the tree an extraction is given, so the metadata is read
    # first, the Markdown extraction gets a copy and the plain text one the tree itself.
    tree = trafilatura.load_html(body)
    if tree is None:
        return None
    meta = trafilatura.extract_metadata(tree, default_url=url)
    language = _clean(getattr(meta, "language", None)) or _clean(tree.get("lang"))
    markdown = trafilatura.extract(copy.deepcopy(tree), output_format="markdown", url=url)
    if not markdown or not markdown.strip():
        return None
    text = trafilatura.extract(tree, output_format="txt", url=url) or ""
    return PageText(
        markdown=markdown.strip(),
        text=text.strip(),
        title=_clean(getattr(meta, "title", None)),
        author=_clean(getattr(meta, "author", None)),
        date=_clean(getattr(meta, "date", None)),
        language=language,
        sitename=_clean(getattr(meta, "sitename", None)),
        description=_clean(getattr(meta, "description", None)),
    )
