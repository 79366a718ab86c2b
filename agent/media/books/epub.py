"""EPUB books, read with zipfile and lxml: container.xml, the OPF's spine, titles from nav or NCX.

One chapter per spine document (a book split into one file per chapter is the common case), titled
by the table of contents, else by the document's first heading. ebooklib would do this, but it is
AGPL-licensed.
"""

from __future__ import annotations

import posixpath
import re
import zipfile
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from taskpost.agent.media.books.model import Book, Chapter, bad_input, clean, finished
from taskpost.agent.media.extras import require

MAX_MEMBER_BYTES = 50 * 1024 * 1024
"""A spine document larger than this (uncompressed) is refused: a zip bomb, not a chapter."""
MAX_TOTAL_BYTES = 200 * 1024 * 1024
"""All the documents read (uncompressed, each time it is read) may add up to no more than this: a
spine that lists one well-compressed document a thousand times is not a book either."""
_SKIPPED_TAGS = ("script", "style", "head", "nav")
_BLOCKS = {"p", "div", "li", "h1", "h2", "h3", "h4", "h5", "h6", "br", "tr", "blockquote", "section", "dd"}


def epub_book(path: Path) -> Book:
    """The EPUB's spine documents as chapters, in reading order."""
    etree = require("lxml.etree", "audiobook", package="lxml")
    try:
        with zipfile.ZipFile(path) as archive:
            reader = _Epub(archive, etree)
            return finished(reader.book(), "EPUB")
    except (zipfile.BadZipFile, KeyError, etree.XMLSyntaxError) as exc:
        raise bad_input(f"the EPUB cannot be read ({exc.__class__.__name__}: {exc})") from exc


class _Epub:
    def __init__(self, archive: zipfile.ZipFile, etree: Any) -> None:
        self.archive = archive
        self.etree = etree
        self.total_bytes = 0

    def xml(self, name: str) -> Any:
        info = self.archive.getinfo(name)
        if info.file_size > MAX_MEMBER_BYTES:
            raise bad_input(f"{name} in the EPUB is too large ({info.file_size} bytes)")
        self.total_bytes += info.file_size
        if self.total_bytes > MAX_TOTAL_BYTES:
            raise bad_input(
                f"the EPUB's documents add up to more than {MAX_TOTAL_BYTES} bytes (reached at {name}; "
                "does its spine list the same document many times?)"
            )
        parser = self.etree.XMLParser(resolve_entities=False, no_network=True, recover=True)
        root = self.etree.fromstring(self.archive.read(info), parser)
        if root is None:
            raise bad_input(f"{name} in the EPUB is not XML")
        return root

    def book(self) -> Book:
        container = self.xml("META-INF/container.xml")
        rootfiles = container.xpath("//*[local-name()='rootfile']/@full-path")
        if not rootfiles:
            raise bad_input("the EPUB's container.xml names no package document")
        opf_path = str(rootfiles[0])
        opf = self.xml(opf_path)
        base = posixpath.dirname(opf_path)
        manifest = {
            str(item.get("id")): item
            for item in opf.xpath("//*[local-name()='manifest']/*[local-name()='item']")
        }

        def href(item: Any) -> str:
            return posixpath.normpath(posixpath.join(base, unquote(str(item.get("href") or ""))))

        titles = self.toc_titles(opf, manifest, href)
        title = " ".join(opf.xpath("string(//*[local-name()='metadata']/*[local-name()='title'])").split())
        chapters: list[Chapter] = []
        for ref in opf.xpath("//*[local-name()='spine']/*[local-name()='itemref']"):
            item = manifest.get(str(ref.get("idref")))
            if item is None or "html" not in str(item.get("media-type") or ""):
                continue
            name = href(item)
            heading, text = self.document_text(name)
            chapter_title = titles.get(name) or heading or f"Section {len(chapters) + 1}"
            chapters.append(Chapter(chapter_title, _without_heading(text, heading, chapter_title)))
        return Book(title=title or None, chapters=chapters)

    def toc_titles(self, opf: Any, manifest: dict[str, Any], href: Any) -> dict[str, str]:
        """Document path -> its first title in the EPUB 3 nav document, else the EPUB 2 NCX."""
        nav = next((i for i in manifest.values() if "nav" in str(i.get("properties") or "").split()), None)
        spine_toc = opf.xpath("string(//*[local-name()='spine']/@toc)")
        ncx = manifest.get(spine_toc) if spine_toc else None
        found: dict[str, str] = {}
        if nav is not None:
            nav_path = href(nav)
            root = self.xml(nav_path)
            links = root.xpath(
                "//*[local-name()='nav'][contains(@*[local-name()='type'], 'toc')]//*[local-name()='a']"
            )
            for link in links or root.xpath("//*[local-name()='nav']//*[local-name()='a']"):
                target = str(link.get("href") or "").split("#")[0]
                if target:
                    name = posixpath.normpath(posixpath.join(posixpath.dirname(nav_path), unquote(target)))
                    found.setdefault(name, " ".join("".join(link.itertext()).split()))
        elif ncx is not None:
            ncx_path = href(ncx)
            for point in self.xml(ncx_path).xpath("//*[local-name()='navPoint']"):
                label = point.xpath("string(./*[local-name()='navLabel'])")
                target = str(point.xpath("string(./*[local-name()='content']/@src)")).split("#")[0]
                if target:
                    name = posixpath.normpath(posixpath.join(posixpath.dirname(ncx_path), unquote(target)))
                    found.setdefault(name, " ".join(label.split()))
        return {name: title for name, title in found.items() if title}

    def document_text(self, name: str) -> tuple[str | None, str]:
        """A spine document's first heading and its text, one paragraph per block element."""
        root = self.xml(name)
        for tag in _SKIPPED_TAGS:
            for element in root.xpath(f"//*[local-name()='{tag}']"):
                parent = element.getparent()
                if parent is not None:
                    if element.tail:
                        _append_tail(element)
                    parent.remove(element)
        headings = root.xpath("//*[local-name()='h1' or local-name()='h2' or local-name()='h3']")
        heading = " ".join("".join(headings[0].itertext()).split()) if headings else None
        parts: list[str] = []
        self._collect(root, parts)
        return heading or None, clean("".join(parts))

    def _collect(self, element: Any, parts: list[str]) -> None:
        """Text in document order, with a paragraph break around every block element."""
        block = isinstance(element.tag, str) and self.etree.QName(element).localname in _BLOCKS
        if block:
            parts.append("\n\n")
        if isinstance(element.tag, str) and element.text:
            parts.append(element.text)
        for child in element:
            self._collect(child, parts)
        if block:
            parts.append("\n\n")
        if element.tail:
            parts.append(element.tail)


def _append_tail(element: Any) -> None:
    """Keep the text after a removed element (lxml drops it with the element)."""
    previous = element.getprevious()
    if previous is not None:
        previous.tail = (previous.tail or "") + element.tail
    else:
        parent = element.getparent()
        parent.text = (parent.text or "") + element.tail


def _without_heading(text: str, heading: str | None, title: str) -> str:
    """The body without its leading heading when the chapter title already says it."""
    if not heading or heading.lower() not in title.lower():
        return text
    words = r"\s+".join(re.escape(word) for word in heading.split())
    return re.sub(rf"^\s*{words}[\s.:]*", "", text, count=1, flags=re.IGNORECASE)
