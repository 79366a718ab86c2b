"""The audiobook's readers: chapters and texts from generated PDF, DOCX, EPUB, Markdown and text files."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from taskpost.agent.handlers.base import HandlerError
from taskpost.agent.media.books import BookFormat, read_book
from taskpost.agent.media.books.pdf import OutlineEntry, outline_chapters, without_page_number
from taskpost.agent.media.books.sentences import MAX_SENTENCE_CHARS, batches, split_sentences
from taskpost.agent.media.books.text import markdown_book
from tests.media_fixtures import books

pytest.importorskip("pypdfium2", reason="needs taskpost[audiobook]")
pytest.importorskip("reportlab", reason="needs reportlab (dev dependency)")

TITLES = [title for title, _ in books.CHAPTERS]
TEXTS = [text for _, text in books.CHAPTERS]


def _words(text: str) -> str:
    return " ".join(text.split())


def test_a_pdf_outline_gives_the_chapters_and_the_titles_are_not_read_twice(tmp_path: Path) -> None:
    found, book = read_book(books.write_pdf(tmp_path / "book.pdf"))
    assert found == BookFormat.PDF
    assert book.title == books.BOOK_TITLE
    assert [chapter.title for chapter in book.chapters] == TITLES
    assert [_words(chapter.text) for chapter in book.chapters] == TEXTS


def test_a_pdf_without_outline_is_cut_into_page_ranges(tmp_path: Path) -> None:
    _, book = read_book(books.write_pdf(tmp_path / "book.pdf", outline=False), pages_per_chapter=2)
    assert [chapter.title for chapter in book.chapters] == ["Pages 1 to 2", "Page 3"]
    assert _words(book.chapters[1].text) == f"{TITLES[2]} {TEXTS[2]}"


def test_two_outline_entries_on_one_page_split_it_at_the_second_title_as_printed() -> None:
    pages = ["Preface words.\nOne\nFirst text.\nPART\nTWO\nSecond text.", "More of two."]
    chapters = outline_chapters(pages, [OutlineEntry("One", 0), OutlineEntry("Part Two", 0)])
    assert [(c.title, _words(c.text)) for c in chapters] == [
        ("Front matter", "Preface words."),
        ("One", "First text."),
        ("Part Two", "Second text. More of two."),
    ]


def test_page_numbers_at_the_top_or_bottom_of_a_page_are_not_read() -> None:
    assert without_page_number("12\nText of the page.\nPage 3 of 9") == "Text of the page."
    assert without_page_number("Chapter 4\nIn 1999 we left.\n- 7 -") == "Chapter 4\nIn 1999 we left.\n- 7 -"


def test_a_docx_is_chaptered_at_its_first_level_headings(tmp_path: Path) -> None:
    pytest.importorskip("docx", reason="needs taskpost[audiobook]")
    found, book = read_book(books.write_docx(tmp_path / "book.docx"))
    assert found == BookFormat.DOCX
    assert book.title == books.BOOK_TITLE
    assert [chapter.title for chapter in book.chapters] == TITLES
    assert _words(book.chapters[0].text) == "A Quiet Night. " + TEXTS[0]  # a sub-heading is read in place
    assert [_words(chapter.text) for chapter in book.chapters[1:]] == TEXTS[1:]


@pytest.mark.parametrize("nav", [True, False], ids=["epub3-nav", "epub2-ncx"])
def test_an_epub_is_read_in_spine_order_with_titles_from_its_table_of_contents(
    tmp_path: Path, nav: bool
) -> None:
    found, book = read_book(books.write_epub(tmp_path / "book.epub", nav=nav))
    assert found == BookFormat.EPUB
    assert book.title == books.BOOK_TITLE
    # the cover (no words) is dropped; the page heading is not repeated after the toc title
    assert [chapter.title for chapter in book.chapters] == [f"Chapter: {title}" for title in TITLES]
    assert [_words(chapter.text) for chapter in book.chapters] == TEXTS
    assert "skipped" not in book.chapters[0].text  # scripts and styles are not read


def test_markdown_chapters_at_the_repeated_heading_level_with_the_markup_removed(tmp_path: Path) -> None:
    found, book = read_book(books.write_markdown(tmp_path / "book.md"))
    assert found == BookFormat.MARKDOWN
    assert book.title == books.BOOK_TITLE
    assert [chapter.title for chapter in book.chapters] == ["Introduction", *TITLES]
    assert _words(book.chapters[1].text) == TEXTS[0]  # *cold* unmarked
    assert _words(book.chapters[3].text) == TEXTS[2] + " First item. Second item."


def test_plain_text_without_headings_is_one_chapter_named_after_the_file(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("First line of the notes.\nSecond line.\n", encoding="utf-8")
    found, book = read_book(path)
    assert found == BookFormat.TEXT
    assert [(c.title, _words(c.text)) for c in book.chapters] == [
        ("notes", "First line of the notes. Second line.")
    ]


def test_markdown_tables_links_and_code_are_made_speakable() -> None:
    book = markdown_book(
        "# One\n\nSee [the guide](http://x.test/g).\n\n| a | b |\n|---|---|\n| c | d |\n\n"
        "```\ncode()\n```\n# Two\n\nEnd."
    )
    assert [(c.title, _words(c.text)) for c in book.chapters] == [
        ("One", "See the guide. a, b. c, d."),
        ("Two", "End."),
    ]


@pytest.mark.parametrize(
    ("name", "content", "kind"),
    [
        ("broken.pdf", b"%PDF-1.4\n garbage without objects", "bad_input"),
        ("broken.docx", b"PK\x03\x04 not really a zip", "bad_input"),
        ("picture.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, "unsupported_format"),
        ("page.html", b"<!doctype html><html><body>Hi</body></html>", "unsupported_format"),
        ("blob.bin", b"\x00\x01\x02\x03" * 64, "unsupported_format"),
        ("empty.txt", b"  \n\n  \n", "no_text"),
        ("marks.md", b"# Title\n\n---\n\n* * *\n", "no_text"),
    ],
)
def test_unreadable_files_fail_with_their_kind(tmp_path: Path, name: str, content: bytes, kind: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(HandlerError) as caught:
        read_book(path)
    assert (caught.value.kind, caught.value.retryable) == (kind, False), caught.value.message


def test_an_image_only_pdf_has_no_text(tmp_path: Path) -> None:
    pytest.importorskip("PIL", reason="needs Pillow")
    from tests.media_fixtures import documents

    with pytest.raises(HandlerError) as caught:
        read_book(documents.write_scanned_pdf(tmp_path / "scan.pdf"))
    assert caught.value.kind == "no_text"
    assert "document task" in caught.value.message


@pytest.mark.parametrize(
    "container", [None, "OEBPS/missing.opf", ""], ids=["no-container", "no-opf", "no-rootfile"]
)
def test_an_epub_without_its_package_document_is_bad_input(tmp_path: Path, container: str | None) -> None:
    path = tmp_path / "book.epub"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("mimetype", "application/epub+zip")
        if container is not None:
            rootfile = f'<rootfile full-path="{container}"/>' if container else ""
            archive.writestr(
                "META-INF/container.xml", f"<container><rootfiles>{rootfile}</rootfiles></container>"
            )
    with pytest.raises(HandlerError) as caught:
        read_book(path)
    assert caught.value.kind == "bad_input"


def test_an_epub_reading_more_than_the_total_cap_is_bad_input(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from taskpost.agent.media.books import epub

    path = books.write_epub(tmp_path / "book.epub")
    with zipfile.ZipFile(path) as archive:
        opf = archive.read("OEBPS/content.opf").decode()
        chapter = len(archive.read("OEBPS/text/c1.xhtml"))
    repeated = path.with_name("repeated.epub")
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(repeated, "w") as archive:
        for info in source.infolist():
            content = source.read(info)
            if info.filename == "OEBPS/content.opf":  # the first chapter, 50 times over
                content = opf.replace('<itemref idref="c1"/>', '<itemref idref="c1"/>' * 50).encode()
            archive.writestr(info, content)
    monkeypatch.setattr(epub, "MAX_TOTAL_BYTES", 20 * chapter)
    assert read_book(path)[1].chapters  # the book itself is well under the cap
    with pytest.raises(HandlerError) as caught:
        read_book(repeated)
    assert caught.value.kind == "bad_input" and "add up to more than" in caught.value.message


def test_sentences_are_split_at_ends_and_paragraphs_and_long_runs_are_cut() -> None:
    text = 'He said "go." Then he left!\nWhy? Fine\n\nA new paragraph without a stop\n\n' + "word, " * 200
    sentences = split_sentences(text)
    assert sentences[:5] == [
        'He said "go."',
        "Then he left!",
        "Why?",
        "Fine",
        "A new paragraph without a stop",
    ]
    assert all(len(sentence) <= MAX_SENTENCE_CHARS for sentence in sentences)
    assert " ".join(sentences[5:]) == " ".join(("word, " * 200).split())
    runs = batches(sentences, max_sentences=2, max_chars=10_000)
    assert [len(run) for run in runs[:3]] == [2, 2, 2]
    assert [sentence for run in runs for sentence in run] == sentences
