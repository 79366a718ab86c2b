"""Word documents (DOCX) as Markdown: headings, bulleted and numbered lists, tables, in body order."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from taskpost.agent.handlers.base import HandlerError, MissingExtra
from taskpost.agent.media.markdown import Converted, Heading, tidy

if TYPE_CHECKING:
    from docx.table import Table
    from docx.text.paragraph import Paragraph

_HEADING_STYLE = re.compile(r"^heading (\d)$", re.IGNORECASE)
_LIST_LEVEL = re.compile(r"(\d+)$")


def docx_document(path: Path) -> Converted:
    """The body of a DOCX file as Markdown and plain text (headers, footers and notes left out)."""
    try:
        import docx
        from docx.table import Table
    except ImportError as exc:
        raise MissingExtra("docs", package="python-docx") from exc
    try:
        document = docx.Document(str(path))
    except Exception as exc:  # python-docx raises zip, XML and KeyError failures alike
        raise HandlerError(
            f"the DOCX file cannot be read ({exc.__class__.__name__}: {exc})",
            retryable=False,
            kind="corrupt_input",
        ) from exc
    markdown: list[str] = []
    text: list[str] = []
    headings: list[Heading] = []
    in_list = False
    for block in document.iter_inner_content():
        if isinstance(block, Table):
            markdown.append(table_markdown(block))
            text.append(table_text(block))
            in_list = False
            continue
        content = " ".join(block.text.split())
        if not content:
            continue
        level = heading_level(block)
        marker = list_marker(block)
        if level:
            headings.append(Heading(level, content))
            markdown.append(f"{'#' * level} {content}")
        elif marker is not None:
            item = f"{marker}{content}"
            if in_list:
                markdown[-1] += "\n" + item
            else:
                markdown.append(item)
        else:
            markdown.append(content)
        text.append(content)
        in_list = marker is not None
    title = str(document.core_properties.title or "").strip() or (headings[0].title if headings else None)
    return Converted(
        markdown=tidy("\n\n".join(markdown)), text=tidy("\n".join(text)), title=title, headings=headings
    )


def _style_name(paragraph: Paragraph) -> str:
    style = paragraph.style
    return str(style.name or "") if style is not None else ""


def heading_level(paragraph: Paragraph) -> int:
    """1..6 for Title and Heading N paragraphs, 0 otherwise."""
    name = _style_name(paragraph)
    if name.lower() == "title":
        return 1
    match = _HEADING_STYLE.match(name)
    return min(int(match.group(1)), 6) if match else 0


def list_marker(paragraph: Paragraph) -> str | None:
    """``- `` or ``1. `` (indented by nesting level) for list paragraphs, None otherwise."""
    name = _style_name(paragraph).lower()
    numbered_by_format = paragraph._p.pPr is not None and paragraph._p.pPr.numPr is not None
    if not name.startswith("list") and not numbered_by_format:
        return None
    level = _LIST_LEVEL.search(name)
    indent = "  " * (int(level.group(1)) - 1 if level else 0)
    return indent + ("1. " if "number" in name else "- ")


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def table_rows(table: Table) -> list[list[str]]:
    return [[_cell(cell.text) for cell in row.cells] for row in table.rows]


def table_markdown(table: Table) -> str:
    """A pipe table; the first row is the header."""
    rows = table_rows(table)
    if not rows:
        return ""
    width = max(len(row) for row in rows)
    rows = [row + [""] * (width - len(row)) for row in rows]
    lines = ["| " + " | ".join(rows[0]) + " |", "|" + " --- |" * width]
    lines += ["| " + " | ".join(row) + " |" for row in rows[1:]]
    return "\n".join(lines)


def table_text(table: Table) -> str:
    return "\n".join("\t".join(row) for row in table_rows(table))
