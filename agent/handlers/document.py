"""``document``: PDF, DOCX, HTML and plain text as clean text and Markdown.

The type is found from the content (and, for HTML, the file name). PDF pages become ``## Page N``
sections; pages without a text layer are recognised with the OCR engines of the ``ocr`` handler.
DOCX headings, lists and tables become Markdown; HTML goes through markdownify without its scripts
and styles.

Params (all optional): ``local_path`` / ``input`` (which file), and for PDF pages that need OCR
``engine`` and ``dpi`` as for ``ocr``.

Outputs: ``document.md`` and ``document.txt``. Result: ``{"kind", "title", "headings":
[{"level", "title"}], "sections", "page_count", "ocr_pages", "pages": [{"page", "source"}], "chars"}``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from taskpost.agent.handlers.base import HandlerError, TaskContext
from taskpost.agent.handlers.params import DocumentParams, Params
from taskpost.agent.media.docx_markdown import docx_document
from taskpost.agent.media.filetypes import FileKind, detect_kind, read_text
from taskpost.agent.media.markdown import Converted, html_document, pages_document, text_document
from taskpost.agent.media.ocr_engines import ENGINES, EngineCache, OcrEngine
from taskpost.agent.media.pages import PageReader, parse_dpi, read_pages
from taskpost.agent.media.sources import media_input
from taskpost.agent.workdir import write_private_text

if TYPE_CHECKING:
    from taskpost.agent.settings import AgentSettings

SUPPORTED = "PDF, DOCX, HTML or plain text"


class DocumentHandler:
    """Converts documents to Markdown and plain text, with an outline of their structure."""

    task_type = "document"
    params_model: ClassVar[type[Params]] = DocumentParams
    requires: ClassVar[dict[str, str]] = {
        "docx": "taskpost[docs]",
        "markdownify": "taskpost[docs]",
        "pypdfium2": "taskpost[docs]",
    }
    """Image-only PDF pages also need the ``ocr`` extra; without it only those jobs fail."""

    def __init__(self, engines: EngineCache = ENGINES) -> None:
        self.engines = engines

    def setup(self, settings: AgentSettings) -> None:
        """Nothing to preload: OCR engines load on the first page that needs one."""

    def run(self, ctx: TaskContext) -> dict[str, Any]:
        engine_name = self.engines.engine_param(ctx.params)
        dpi = parse_dpi(ctx.params.get("dpi"))
        path = media_input(ctx)
        kind = detect_kind(path)
        ctx.heartbeat(0.0, f"converting {kind or 'unknown'} file")
        if kind == FileKind.PDF:

            def engine() -> OcrEngine:
                return self.engines.for_task(engine_name, ctx.worker_type, ctx.force_cpu)

            with PageReader(path, kind, engine=engine, dpi=dpi, extra="docs") as reader:
                pages = read_pages(ctx, reader, end=0.95)
                title = reader.title
            if pages is None:
                return {"cancelled": True}
            converted = pages_document(pages, title=title)
        elif kind == FileKind.DOCX:
            converted = docx_document(path)
        elif kind == FileKind.HTML:
            converted = html_document(read_text(path))
        elif kind == FileKind.TEXT:
            converted = text_document(read_text(path))
        else:
            found = "an image: use the ocr task" if kind == FileKind.IMAGE else "an unknown binary format"
            raise HandlerError(
                f"{path.name} is {found}; the document task reads {SUPPORTED}",
                retryable=False,
                kind="unsupported_input",
            )
        write_outputs(ctx.output_dir, converted)
        ctx.heartbeat(1.0, "done")
        return summary(kind, converted)


def write_outputs(folder: Path, converted: Converted) -> None:
    write_private_text(folder / "document.md", converted.markdown + "\n")
    write_private_text(folder / "document.txt", converted.text + "\n")


def summary(kind: FileKind, converted: Converted) -> dict[str, Any]:
    """The job's result: what was read and the outline of the document."""
    return {
        "kind": str(kind),
        "title": converted.title,
        "headings": [heading.to_json() for heading in converted.headings],
        "sections": len(converted.headings),
        "page_count": converted.page_count,
        "ocr_pages": sum(page.source == "ocr" for page in converted.pages),
        "pages": [{"page": page.number, "source": page.source} for page in converted.pages],
        "chars": len(converted.text),
    }
