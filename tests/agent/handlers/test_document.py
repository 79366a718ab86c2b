"""The ``document`` handler on generated DOCX, HTML, text and PDF files."""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from taskpost.agent.handlers.base import HandlerError, TaskContext
from taskpost.agent.handlers.document import DocumentHandler

pytestmark = pytest.mark.media
pytest.importorskip("docx", reason="needs taskpost[docs]")
pytest.importorskip("markdownify", reason="needs taskpost[docs]")
pytest.importorskip("PIL", reason="the test documents are drawn with pillow (taskpost[ocr])")
pytest.importorskip("reportlab", reason="needs the dev dependency reportlab")

from tests.media_fixtures import documents as media  # noqa: E402  (imports PIL)

MakeCtx = Callable[..., TaskContext]


@pytest.fixture
def make_ctx(tmp_path: Path) -> MakeCtx:
    def make(path: Path, **params: Any) -> TaskContext:
        return TaskContext(
            job_id="j1",
            task_type="document",
            attempt=1,
            params=params,
            inputs={path.name: path},
            work_dir=tmp_path / f"work-{path.stem}",
        )

    return make


def convert(ctx: TaskContext) -> tuple[dict[str, Any], str, str]:
    result = DocumentHandler().run(ctx)
    markdown = (ctx.output_dir / "document.md").read_text(encoding="utf-8")
    text = (ctx.output_dir / "document.txt").read_text(encoding="utf-8")
    return result, markdown, text


def test_docx_headings_lists_and_tables_become_markdown(tmp_path: Path, make_ctx: MakeCtx) -> None:
    result, markdown, text = convert(make_ctx(media.write_docx(tmp_path / "report.docx")))
    assert markdown.startswith(
        "# Quarterly Report\n\nThis report covers the first quarter.\n\n# Highlights\n"
    )
    assert "- Revenue grew by 12 percent\n- Two new offices opened" in markdown
    assert "## Next steps\n\n1. Hire three engineers\n1. Ship the new agent" in markdown
    assert (
        "| Region | Sales | Growth |\n| --- | --- | --- |\n| North | 120 | 8% |\n| South | 95 | 15% |"
        in markdown
    )
    assert markdown.endswith("End of report.\n")
    assert result["kind"] == "docx"
    assert result["title"] == "Quarterly Report"
    assert result["headings"] == [
        {"level": 1, "title": "Quarterly Report"},
        {"level": 1, "title": "Highlights"},
        {"level": 2, "title": "Next steps"},
    ]
    assert "#" not in text and "|" not in text
    assert "Revenue grew by 12 percent" in text and "North\t120\t8%" in text


def test_html_drops_scripts_and_styles(tmp_path: Path, make_ctx: MakeCtx) -> None:
    result, markdown, text = convert(make_ctx(media.write_html(tmp_path / "notes.html")))
    assert markdown.startswith("# Release notes\n\nVersion **2.1** adds OCR and document extraction.")
    assert "## Changes\n\n- New ocr task\n- New document task" in markdown
    assert "| ocr | rapidocr |" in markdown
    for hidden in ("tracking", "popup", "color", "display"):
        assert hidden not in markdown and hidden not in text
    assert "Version 2.1 adds OCR and document extraction." in text.splitlines()
    assert result["title"] == "Release notes"
    assert result["headings"] == [{"level": 1, "title": "Release notes"}, {"level": 2, "title": "Changes"}]


def test_a_text_pdf_becomes_one_section_per_page(tmp_path: Path, make_ctx: MakeCtx) -> None:
    path = media.write_text_pdf(tmp_path / "letter.pdf")
    result, markdown, text = convert(make_ctx(path))
    page_one, page_two = "\n".join(media.LINES), "\n".join(media.PAGE_TWO)
    assert markdown == f"## Page 1\n\n{page_one}\n\n## Page 2\n\n{page_two}\n"
    assert text == f"{page_one}\n\n{page_two}\n"
    assert result["page_count"] == 2
    assert result["pages"] == [{"page": 1, "source": "text_layer"}, {"page": 2, "source": "text_layer"}]
    assert result["ocr_pages"] == 0


def test_a_pdf_title_heads_the_markdown(tmp_path: Path, make_ctx: MakeCtx) -> None:
    path = tmp_path / "titled.pdf"
    media.write_text_pdf(path, [media.LINES])
    titled = path.read_bytes().replace(b"(untitled)", b"(Annual Letter)")
    path.write_bytes(titled)
    result, markdown, _ = convert(make_ctx(path))
    assert markdown.startswith("# Annual Letter\n\n## Page 1\n\n")
    assert result["title"] == "Annual Letter"


def test_an_image_only_pdf_falls_through_to_ocr(tmp_path: Path, make_ctx: MakeCtx) -> None:
    pytest.importorskip("rapidocr", reason="needs taskpost[ocr]")
    jiwer = pytest.importorskip("jiwer")
    result, markdown, text = convert(make_ctx(media.write_mixed_pdf(tmp_path / "mixed.pdf")))
    assert result["pages"] == [{"page": 1, "source": "text_layer"}, {"page": 2, "source": "ocr"}]
    assert result["ocr_pages"] == 1
    assert "## Page 2\n\n" in markdown
    ocr_text = markdown.split("## Page 2\n\n")[1]
    assert jiwer.cer(" ".join(media.PAGE_TWO), " ".join(ocr_text.split())) < 0.03
    assert text.startswith("\n".join(media.LINES))


def test_plain_text_passes_through(tmp_path: Path, make_ctx: MakeCtx) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("Line one   \r\n\r\n\r\n\r\nLine two\n", encoding="utf-8")
    result, markdown, text = convert(make_ctx(path))
    assert markdown == text == "Line one\n\nLine two\n"
    assert result["kind"] == "text"
    assert result["page_count"] is None


@pytest.mark.parametrize(
    ("case", "kind", "message"),
    [
        ("image", "unsupported_input", "is an image: use the ocr task"),
        ("binary", "unsupported_input", "an unknown binary format"),
        ("zip", "unsupported_input", "an unknown binary format"),
        ("broken docx", "corrupt_input", "the DOCX file cannot be read"),
        ("encrypted pdf", "encrypted_pdf", "encrypted"),
    ],
)
def test_unsupported_and_broken_files_fail_without_retry(
    case: str, kind: str, message: str, tmp_path: Path, make_ctx: MakeCtx
) -> None:
    path = tmp_path / "input.bin"
    if case == "image":
        path = media.write_image(tmp_path / "scan.png")
    elif case == "binary":
        path.write_bytes(bytes(range(256)) * 4)
    elif case in ("zip", "broken docx"):
        with zipfile.ZipFile(path, "w") as archive:
            name = "word/document.xml" if case == "broken docx" else "data.csv"
            archive.writestr(name, "<w:document>not closed")
    else:
        media.write_text_pdf(path, encrypt="secret")
    with pytest.raises(HandlerError) as failure:
        DocumentHandler().run(make_ctx(path))
    assert failure.value.retryable is False
    assert failure.value.kind == kind
    assert message in failure.value.message
