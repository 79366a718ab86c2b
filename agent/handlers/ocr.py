"""``ocr``: the text of images (PNG, JPEG, TIFF with all its pages, ...) and PDFs.

A PDF page that has a text layer is read directly; image pages are rasterised and recognised.

Params (all optional):

- ``engine``: ``rapidocr`` or ``easyocr``; by default easyocr on GPU agents, rapidocr elsewhere
- ``dpi``: resolution at which PDF image pages are rasterised, 50..600 (default 200)
- ``local_path`` / ``input``: which file to read (see ``agent.media.sources``)

Outputs: ``text.txt`` (the pages' text, pages separated by a form feed line) and ``ocr.json``
(every page with its source and, for OCR pages, its lines with boxes and confidences).
Result: ``{"engine", "page_count", "ocr_pages", "pages": [{"page", "source", "text", "lines"}]}``.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any, ClassVar

from taskpost.agent.handlers.base import HandlerError, TaskContext
from taskpost.agent.handlers.params import OcrParams, Params
from taskpost.agent.media.filetypes import FileKind, detect_kind
from taskpost.agent.media.ocr_engines import ENGINES, EngineCache, OcrEngine, default_engine_name
from taskpost.agent.media.pages import PageReader, PageText, parse_dpi, read_pages
from taskpost.agent.media.sources import media_input
from taskpost.agent.workdir import write_private_text

if TYPE_CHECKING:
    from taskpost.agent.settings import AgentSettings

logger = logging.getLogger(__name__)

PAGE_SEPARATOR = "\n\f\n"
"""Between two pages of ``text.txt``: a line holding only a form feed."""


class OcrHandler:
    """Recognises the text of images and PDFs with the engine of the agent or of the job."""

    task_type = "ocr"
    params_model: ClassVar[type[Params]] = OcrParams
    requires: ClassVar[dict[str, str]] = {
        "rapidocr": "taskpost[ocr]",
        "onnxruntime": "taskpost[ocr]",
        "pypdfium2": "taskpost[ocr]",
        "PIL": "taskpost[ocr]",
    }

    def __init__(self, engines: EngineCache = ENGINES) -> None:
        self.engines = engines

    def setup(self, settings: AgentSettings) -> None:
        """Load this agent's default engine, so that the first task does not wait for it."""
        engine = self.engines.for_task(None, settings.worker_type, settings.force_cpu)
        logger.info(
            "OCR engine %s ready (default for %s agents is %s)",
            engine.name,
            settings.worker_type,
            default_engine_name(settings.worker_type, settings.force_cpu),
            extra={"action": "ocr_ready"},
        )

    def run(self, ctx: TaskContext) -> dict[str, Any]:
        engine_name = self.engines.engine_param(ctx.params)
        dpi = parse_dpi(ctx.params.get("dpi"))
        path = media_input(ctx)
        kind = detect_kind(path)
        if kind not in (FileKind.IMAGE, FileKind.PDF):
            raise HandlerError(
                f"{path.name} is not an image or a PDF (found: {kind or 'unknown binary'})",
                retryable=False,
                kind="unsupported_input",
            )
        used: list[OcrEngine] = []

        def engine() -> OcrEngine:
            if not used:
                used.append(self.engines.for_task(engine_name, ctx.worker_type, ctx.force_cpu))
            return used[0]

        with PageReader(path, kind, engine=engine, dpi=dpi) as reader:
            pages = read_pages(ctx, reader)
        if pages is None:
            return {"cancelled": True}
        name = used[0].name if used else None
        write_outputs(ctx, pages, engine=name, dpi=dpi)
        return {
            "engine": name,
            "page_count": len(pages),
            "ocr_pages": sum(page.source == "ocr" for page in pages),
            "pages": [page.summary() for page in pages],
        }


def write_outputs(ctx: TaskContext, pages: list[PageText], *, engine: str | None, dpi: int) -> None:
    """``text.txt`` and ``ocr.json`` in the task's output folder."""
    text = PAGE_SEPARATOR.join(page.text for page in pages)
    write_private_text(ctx.output_dir / "text.txt", text + "\n")
    document = {
        "engine": engine,
        "dpi": dpi,
        "pages": [
            {
                "page": page.number,
                "source": page.source,
                "text": page.text,
                "lines": [line.to_json() for line in page.lines],
            }
            for page in pages
        ],
    }
    write_private_text(ctx.output_dir / "ocr.json", json.dumps(document, ensure_ascii=False))
