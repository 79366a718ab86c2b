"""OCR pages per minute for each engine, on generated A4 scans.

Writes an image-only PDF of A4 pages (36 lines of 12 pt DejaVu Sans each, rendered at 200 dpi),
then reads it the way the ``ocr`` handler does (``PageReader``: rasterise at ``--dpi``, recognise)
with each engine, one page at a time on this machine. A text PDF of the same pages is read too,
through its text layer, for comparison. Reported: the engine's load time, seconds per page,
pages per minute and the character error rate against the rendered text.

EasyOCR on a CPU takes tens of seconds a page: by default it reads only ``--easyocr-pages``.

Usage (from the repository root): python -m bench.ocr_pages [--pages 5] [--easyocr-pages 2]
    [--dpi 200] [--engines rapidocr easyocr] [--gpu]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import jiwer

from taskpost.agent.handlers.base import MissingExtra
from taskpost.agent.media.filetypes import FileKind
from taskpost.agent.media.ocr_engines import ENGINE_FACTORIES, OcrEngine
from taskpost.agent.media.pages import PageReader
from tests.media_fixtures import documents as media

LINES_PER_PAGE = 36


@dataclass
class Row:
    engine: str
    device: str
    pages: int
    load_s: float
    seconds: float
    cer: float

    def cells(self) -> list[str]:
        per_page = self.seconds / self.pages
        return [
            self.engine,
            self.device,
            str(self.pages),
            f"{self.load_s:.1f}",
            f"{per_page:.2f}",
            f"{60 / per_page:.0f}" if per_page > 0.01 else f"{60 / per_page:,.0f}",
            f"{self.cer:.2%}",
        ]


def _normal(text: str) -> str:
    return " ".join(text.split())


def read_all(path: Path, pages: int, dpi: int, engine: OcrEngine | None) -> tuple[float, list[str]]:
    """Seconds to read the first ``pages`` pages, and their text."""

    def get() -> OcrEngine:
        if engine is None:
            raise RuntimeError("a page without a text layer in the text PDF")
        return engine

    texts = []
    with PageReader(path, FileKind.PDF, engine=get, dpi=dpi) as reader:
        started = time.perf_counter()
        for index in range(pages):
            texts.append(reader.read(index).text)
        return time.perf_counter() - started, texts


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pages", type=int, default=5, help="pages per engine (default 5)")
    parser.add_argument("--easyocr-pages", type=int, default=2, help="pages for easyocr (default 2)")
    parser.add_argument("--dpi", type=int, default=200, help="rasterisation dpi (default 200)")
    parser.add_argument(
        "--engines", nargs="+", default=sorted(ENGINE_FACTORIES), choices=sorted(ENGINE_FACTORIES)
    )
    parser.add_argument("--gpu", action="store_true", help="ask the engines for the GPU")
    args = parser.parse_args()

    reference = [media.page_lines(LINES_PER_PAGE, seed=page, words=8) for page in range(args.pages)]
    expected = [_normal("\n".join(lines)) for lines in reference]
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as folder:
        scanned = media.write_scanned_pdf(Path(folder) / "scanned.pdf", reference)
        text_pdf = media.write_text_pdf(Path(folder) / "text.pdf", reference)
        seconds, texts = read_all(text_pdf, args.pages, args.dpi, None)
        rows.append(Row("text layer", "cpu", args.pages, 0.0, seconds, _cer(expected, texts)))
        for name in args.engines:
            pages = min(args.pages, args.easyocr_pages) if name == "easyocr" and not args.gpu else args.pages
            started = time.perf_counter()
            try:
                engine = ENGINE_FACTORIES[name](gpu=args.gpu)
            except MissingExtra as exc:
                print(f"{name}: skipped ({exc})")
                continue
            load_s = time.perf_counter() - started
            engine.recognize(media.text_image(media.LINES[:1]))  # warm-up: first-call allocations
            seconds, texts = read_all(scanned, pages, args.dpi, engine)
            device = "gpu" if getattr(engine, "gpu", False) else "cpu"
            rows.append(Row(name, device, pages, load_s, seconds, _cer(expected[:pages], texts)))

    print(f"A4 pages, {LINES_PER_PAGE} lines of 12 pt text, rasterised at {args.dpi} dpi\n")
    print("| engine | device | pages | load (s) | s/page | pages/min | CER |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for row in rows:
        print("| " + " | ".join(row.cells()) + " |")


def _cer(expected: list[str], texts: list[str]) -> float:
    return float(jiwer.cer(expected, [_normal(text) for text in texts]))


if __name__ == "__main__":
    main()
