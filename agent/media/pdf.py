"""PDF pages through pypdfium2: page count, each page's text layer, rasterising image pages."""

from __future__ import annotations

from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from taskpost.agent.handlers.base import HandlerError
from taskpost.agent.media.extras import require

if TYPE_CHECKING:
    from PIL.Image import Image

MAX_RENDER_PIXELS = 120_000_000
"""Largest page raster (about A3 at 600 dpi); bigger pages need a lower ``dpi``."""
UNTITLED = {"", "untitled"}
"""Titles that say nothing (reportlab writes "untitled" when it is given none)."""


def _pdfium(extra: str) -> Any:
    return require("pypdfium2", extra)


class PdfFile:
    """An open PDF document. Use as a context manager; pages are numbered from 0."""

    def __init__(self, path: Path, *, extra: str = "ocr") -> None:
        pdfium = _pdfium(extra)
        raw = require("pypdfium2.raw", extra)
        try:
            self._pdf: Any = pdfium.PdfDocument(str(path))
        except pdfium.PdfiumError as exc:
            if exc.err_code == raw.FPDF_ERR_PASSWORD:
                raise HandlerError(
                    "the PDF is encrypted with a password; decrypt it first",
                    retryable=False,
                    kind="encrypted_pdf",
                ) from exc
            raise HandlerError(
                f"the PDF cannot be read ({exc}); is it complete?", retryable=False, kind="corrupt_input"
            ) from exc
        if len(self._pdf) == 0:
            self.close()
            raise HandlerError("the PDF has no pages", retryable=False, kind="corrupt_input")

    def __enter__(self) -> PdfFile:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __len__(self) -> int:
        return len(self._pdf)

    def close(self) -> None:
        self._pdf.close()

    @property
    def title(self) -> str | None:
        """The Title of the document information dictionary, when it has one."""
        title = str(self._pdf.get_metadata_dict(skip_empty=True).get("Title") or "").strip()
        return title if title.lower() not in UNTITLED else None

    def text_layer(self, index: int) -> str:
        """The page's embedded text, lines right-stripped; empty when the page is only images."""
        page = self._pdf[index]
        try:
            textpage = page.get_textpage()
            try:
                text = str(textpage.get_text_range())
            finally:
                textpage.close()
        finally:
            page.close()
        return clean_text(text)

    def render(self, index: int, dpi: int) -> Image:
        """The page as an RGB image at ``dpi`` dots per inch."""
        page = self._pdf[index]
        try:
            width, height = page.get_size()
            scale = dpi / 72
            if width * scale * height * scale > MAX_RENDER_PIXELS:
                raise HandlerError(
                    f"page {index + 1} is too large to rasterise at {dpi} dpi; use a lower dpi",
                    retryable=False,
                    kind="bad_params",
                )
            bitmap = page.render(scale=scale)
            try:
                image: Image = bitmap.to_pil().convert("RGB")
            finally:
                bitmap.close()
        finally:
            page.close()
        return image


def clean_text(text: str) -> str:
    """Unix line ends, no trailing spaces, no leading or trailing blank lines."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return "\n".join(line.rstrip() for line in lines).strip("\n")
