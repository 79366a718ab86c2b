"""The pages of an image or a PDF as text.

A PDF page with a text layer is read directly; image pages (and every frame of an image file,
multi-page TIFFs included) are rasterised and recognised by an OCR engine, which is asked for
only when a page needs it. Shared by the ``ocr`` and ``document`` handlers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

from taskpost.agent.handlers.base import HandlerError, MissingExtra, TaskContext
from taskpost.agent.media.filetypes import FileKind
from taskpost.agent.media.ocr_engines import Line, OcrEngine
from taskpost.agent.media.pdf import PdfFile

if TYPE_CHECKING:
    from PIL.Image import Image

DEFAULT_DPI = 200
MIN_DPI = 50
MAX_DPI = 600

PageSource = Literal["text_layer", "ocr"]
EngineGetter = Callable[[], OcrEngine]


@dataclass
class PageText:
    """One page's text and where it came from; ``number`` counts from 1."""

    number: int
    source: PageSource
    text: str
    lines: list[Line] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {"page": self.number, "source": self.source, "text": self.text, "lines": len(self.lines)}


def parse_dpi(value: Any) -> int:
    """The ``dpi`` param: a whole number from 50 to 600, 200 when absent."""
    if value is None:
        return DEFAULT_DPI
    if isinstance(value, bool) or not isinstance(value, int | float) or int(value) != value:
        raise HandlerError(f"dpi must be a whole number, got {value!r}", retryable=False, kind="bad_params")
    if not MIN_DPI <= value <= MAX_DPI:
        raise HandlerError(
            f"dpi must be between {MIN_DPI} and {MAX_DPI}, got {value}", retryable=False, kind="bad_params"
        )
    return int(value)


def lines_to_text(lines: list[Line]) -> str:
    """Lines in reading order: rows top to bottom, boxes in a row left to right."""
    rows: list[list[Line]] = []
    for line in sorted(lines, key=lambda item: (item.top + item.bottom) / 2):
        center = (line.top + line.bottom) / 2
        if rows and rows[-1][0].top <= center <= rows[-1][0].bottom:
            rows[-1].append(line)
        else:
            rows.append([line])
    return "\n".join(" ".join(item.text for item in sorted(row, key=lambda item: item.left)) for row in rows)


class PageReader:
    """Reads an image or PDF page by page. Use as a context manager; indexes count from 0."""

    def __init__(
        self, path: Path, kind: FileKind, *, engine: EngineGetter, dpi: int = DEFAULT_DPI, extra: str = "ocr"
    ) -> None:
        self._engine = engine
        self._dpi = dpi
        self._pdf: PdfFile | None = None
        self._image: Image | None = None
        if kind == FileKind.PDF:
            self._pdf = PdfFile(path, extra=extra)
            self._count = len(self._pdf)
        elif kind == FileKind.IMAGE:
            self._image = _open_image(path)
            self._count = int(getattr(self._image, "n_frames", 1))
        else:
            raise ValueError(f"pages of a {kind} file cannot be read")

    def __enter__(self) -> PageReader:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __len__(self) -> int:
        return self._count

    @property
    def title(self) -> str | None:
        return self._pdf.title if self._pdf is not None else None

    def close(self) -> None:
        if self._pdf is not None:
            self._pdf.close()
        if self._image is not None:
            self._image.close()

    def read(self, index: int) -> PageText:
        if self._pdf is not None:
            text = self._pdf.text_layer(index)
            if text.strip():
                return PageText(index + 1, "text_layer", text)
            image = self._pdf.render(index, self._dpi)
        else:
            image = self._frame(index)
        lines = self._engine().recognize(image)
        return PageText(index + 1, "ocr", lines_to_text(lines), lines)

    def _frame(self, index: int) -> Image:
        assert self._image is not None
        try:
            self._image.seek(index)
            return self._image.convert("RGB")
        except (OSError, ValueError, SyntaxError) as exc:
            raise HandlerError(
                f"image frame {index + 1} cannot be decoded ({exc})", retryable=False, kind="corrupt_input"
            ) from exc


def _open_image(path: Path) -> Image:
    try:
        from PIL import Image as PILImage
    except ImportError as exc:
        raise MissingExtra("ocr", package="pillow") from exc
    try:
        return PILImage.open(path)
    except PILImage.DecompressionBombError as exc:
        raise HandlerError(str(exc), retryable=False, kind="bad_input") from exc
    except (OSError, ValueError, SyntaxError) as exc:
        raise HandlerError(
            f"the image cannot be read ({exc})", retryable=False, kind="corrupt_input"
        ) from exc


def read_pages(
    ctx: TaskContext, reader: PageReader, *, start: float = 0.0, end: float = 1.0
) -> list[PageText] | None:
    """Every page, reporting progress from ``start`` to ``end``; None once the task is cancelled."""
    total = len(reader)
    pages: list[PageText] = []
    for index in range(total):
        ctx.heartbeat(start + (end - start) * index / total, f"page {index + 1}/{total}")
        if ctx.is_cancelled():
            return None
        pages.append(reader.read(index))
    ctx.heartbeat(end, f"{total}/{total} pages")
    return pages
