"""Small books for the audiobook tests, generated on the spot: PDF (reportlab, with or without an
outline), DOCX (python-docx headings), EPUB (zipped by hand, EPUB 3 nav or EPUB 2 NCX), Markdown.

The texts hold no numbers and only plain words that espeak-ng says clearly, so that the
spoken chapters can be transcribed back and compared word for word.
"""

from __future__ import annotations

import zipfile
from collections.abc import Sequence
from pathlib import Path

BOOK_TITLE = "Evenings by the Sea"
CHAPTERS = (
    (
        "The Morning Walk",
        "We walked to the station early in the morning. The weather was cold and windy. "
        "The train arrived a few minutes late.",
    ),
    (
        "The Meeting",
        "Please send the report to the finance team by Friday. "
        "Bring a copy of the budget and your notes to the meeting.",
    ),
    (
        "The Library",
        "The library opens early on weekdays and closes late on Thursday. "
        "You can borrow as many books as you like.",
    ),
)
Chapters = Sequence[tuple[str, str]]


def _sentences(text: str) -> list[str]:
    return [part if part.endswith(".") else part + "." for part in text.split(". ")]


def write_pdf(path: Path, chapters: Chapters = CHAPTERS, *, outline: bool = True) -> Path:
    """One page per chapter: its title, then one sentence per line; bookmarks when ``outline``."""
    from reportlab.pdfgen import canvas

    pdf = canvas.Canvas(str(path))
    pdf.setTitle(BOOK_TITLE)
    for index, (title, text) in enumerate(chapters):
        if outline:
            pdf.bookmarkPage(f"chapter-{index}")
            pdf.addOutlineEntry(title, f"chapter-{index}", level=0)
        pdf.setFont("Helvetica-Bold", 16)
        pdf.drawString(72, 760, title)
        pdf.setFont("Helvetica", 12)
        for row, sentence in enumerate(_sentences(text)):
            pdf.drawString(72, 730 - 18 * row, sentence)
        pdf.showPage()
    pdf.save()
    return path


def write_docx(path: Path, chapters: Chapters = CHAPTERS) -> Path:
    """A Title paragraph, then a Heading 1 and a paragraph per chapter (one with a Heading 2 inside)."""
    import docx

    document = docx.Document()
    document.add_heading(BOOK_TITLE, level=0)
    for index, (title, text) in enumerate(chapters):
        document.add_heading(title, level=1)
        if index == 0:
            document.add_heading("A Quiet Night", level=2)
        document.add_paragraph(text)
    document.save(str(path))
    return path


def write_markdown(path: Path, chapters: Chapters = CHAPTERS) -> Path:
    """``# Book title`` above ``## Chapter`` headings, with a list and emphasis to be unmarked."""
    parts = [f"# {BOOK_TITLE}", "A short book for testing."]
    for title, text in chapters:
        parts += [f"## {title}", text.replace("cold", "*cold*")]
    path.write_text("\n\n".join(parts) + "\n- First item\n- Second item\n", encoding="utf-8")
    return path


def _xhtml(title: str, text: str) -> str:
    paragraphs = "".join(f"<p>{sentence}</p>" for sentence in _sentences(text) if text)
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        '<html xmlns="http://www.w3.org/1999/xhtml"><head><title>x</title>'
        "<style>p { margin: 0 }</style></head>"
        f"<body><h1>{title}</h1>{paragraphs}<script>var skipped = 1;</script></body></html>"
    )


def write_epub(path: Path, chapters: Chapters = CHAPTERS, *, nav: bool = True) -> Path:
    """An EPUB with one XHTML file per chapter under OEBPS/text/, and a cover page without text.

    ``nav``: an EPUB 3 navigation document; else an EPUB 2 NCX. The table of contents titles differ
    from the in-page headings ("Chapter: ...") so that a test can tell which one was used.
    """
    items = ['<item id="cover" href="text/cover.xhtml" media-type="application/xhtml+xml"/>']
    spine = ['<itemref idref="cover"/>']
    files = {"OEBPS/text/cover.xhtml": _xhtml("", "").replace("<h1></h1>", "")}
    links = []
    for index, (title, text) in enumerate(chapters, start=1):
        items.append(f'<item id="c{index}" href="text/c{index}.xhtml" media-type="application/xhtml+xml"/>')
        spine.append(f'<itemref idref="c{index}"/>')
        files[f"OEBPS/text/c{index}.xhtml"] = _xhtml(title, text)
        links.append((f"text/c{index}.xhtml", f"Chapter: {title}"))
    if nav:
        items.append('<item id="nav" href="nav.xhtml" media-type="application/xhtml+xml" properties="nav"/>')
        entries = "".join(f'<li><a href="{href}">{label}</a></li>' for href, label in links)
        files["OEBPS/nav.xhtml"] = (
            '<html xmlns="http://www.w3.org/1999/xhtml" xmlns:epub="http://www.idpf.org/2007/ops"><body>'
            f'<nav epub:type="toc"><ol>{entries}</ol></nav></body></html>'
        )
        toc_attr = ""
    else:
        items.append('<item id="ncx" href="toc.ncx" media-type="application/x-dtbncx+xml"/>')
        points = "".join(
            f'<navPoint id="p{i}"><navLabel><text>{label}</text></navLabel><content src="{href}"/></navPoint>'
            for i, (href, label) in enumerate(links)
        )
        files["OEBPS/toc.ncx"] = (
            f'<ncx xmlns="http://www.daisy.org/z3986/2005/ncx/"><navMap>{points}</navMap></ncx>'
        )
        toc_attr = ' toc="ncx"'
    files["OEBPS/content.opf"] = (
        '<package xmlns="http://www.idpf.org/2007/opf" version="3.0">'
        f'<metadata xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:title>{BOOK_TITLE}</dc:title></metadata>'
        f"<manifest>{''.join(items)}</manifest><spine{toc_attr}>{''.join(spine)}</spine></package>"
    )
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("mimetype", "application/epub+zip", compress_type=zipfile.ZIP_STORED)
        archive.writestr(
            "META-INF/container.xml",
            '<container xmlns="urn:oasis:names:tc:opendocument:xmlns:container" version="1.0"><rootfiles>'
            '<rootfile full-path="OEBPS/content.opf" media-type="application/oebps-package+xml"/>'
            "</rootfiles></container>",
        )
        for name, content in files.items():
            archive.writestr(name, content)
    return path
