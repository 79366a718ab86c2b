"""``video_audio``: the audio of a tiny lavfi test video, extracted by the handler and read back
with PyAV (duration, rate, channels, and loudness, which says where a cut comes from)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from taskpost.agent.handlers.base import CancelReason, HandlerError, TaskContext
from taskpost.agent.handlers.video_audio import VideoAudioHandler
from taskpost.agent.net.addresses import ALLOW_ALL
from tests.agent.media.media_files import RAMP_S, make_video
from tests.media_fixtures.media_server import serve

pytestmark = pytest.mark.media

av = pytest.importorskip("av", reason="needs taskpost[video]")
np = pytest.importorskip("numpy", reason="needs taskpost[video]")

AAC_PRIMING_S = 0.1
"""AAC adds about 20 ms of encoder delay to a 3 s track: durations are checked to 0.1 s."""


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("ffmpeg") is None:
        pytest.skip("needs ffmpeg to make the test video")
    folder = tmp_path_factory.mktemp("video")
    make_video(folder / "clip.mp4")
    make_video(folder / "silent.mp4", audio=False)
    (folder / "notes.mp4").write_text("not a video at all\n" * 20)
    return folder


def _ctx(tmp_path: Path, params: dict[str, Any], source: Path | None = None) -> TaskContext:
    inputs = {source.name: source} if source is not None else {}
    return TaskContext(
        job_id="job-1", task_type="video_audio", attempt=1, params=params, inputs=inputs, work_dir=tmp_path
    )


def _read(path: Path) -> tuple[Any, Any]:
    """The file's audio stream and its samples as float (channels x samples)."""
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        frames = [frame.to_ndarray() for frame in container.decode(stream)]
        channels = stream.codec_context.layout.nb_channels
    samples = np.concatenate(frames, axis=1)
    scale = 32768 if samples.dtype == np.int16 else 1  # MP3 and AAC decode to float
    if samples.shape[0] != channels:  # packed: interleaved in one row
        samples = samples.reshape(-1, channels).T
    return stream, samples.astype(np.float64) / scale


def _rms(samples: Any) -> Any:
    return np.sqrt((samples**2).mean(axis=1))


def _ramp_rms(start_s: float, end_s: float) -> float:
    """The RMS of the test tone (amplitude 0.25 t) over [start_s, end_s]."""
    return float(np.sqrt(0.0625 * (end_s**3 - start_s**3) / 3 / 2 / (end_s - start_s)))


@pytest.mark.parametrize(("fmt", "codec"), [("wav", "pcm_s16le"), ("flac", "flac"), ("mp3", "mp3")])
def test_each_format_holds_the_whole_track(media: Path, tmp_path: Path, fmt: str, codec: str) -> None:
    ctx = _ctx(tmp_path, {"format": fmt}, media / "clip.mp4")
    result = VideoAudioHandler().run(ctx)

    out = ctx.output_dir / f"audio.{fmt}"
    assert result["outputs"] == [out.name] and [p.name for p in ctx.output_dir.iterdir()] == [out.name]
    assert result["format"] == fmt
    stream_info = dict(result["stream"])
    assert stream_info.pop("bit_rate") > 0
    assert stream_info == {"codec": "aac", "sample_rate": 44100, "channels": 2, "layout": "stereo"}
    assert result["duration_s"] == pytest.approx(RAMP_S, abs=AAC_PRIMING_S)
    assert result["output_duration_s"] == pytest.approx(RAMP_S, abs=AAC_PRIMING_S)
    stream, samples = _read(out)
    assert stream.codec_context.name.startswith(codec) and stream.sample_rate == 44100
    assert samples.shape[0] == 2 and samples.shape[1] / 44100 == pytest.approx(RAMP_S, abs=AAC_PRIMING_S)
    left, right = _rms(samples)
    assert left == pytest.approx(_ramp_rms(0, RAMP_S), rel=0.1) and right < 0.001  # MP3: 5% quieter
    assert ctx.progress_snapshot() == (1.0, "done")


def test_a_cut_keeps_its_range_to_the_sample(media: Path, tmp_path: Path) -> None:
    ctx = _ctx(tmp_path, {"start_s": 1.0, "end_s": 2.0}, media / "clip.mp4")
    result = VideoAudioHandler().run(ctx)
    assert result["output_duration_s"] == 1.0 and (result["start_s"], result["end_s"]) == (1.0, 2.0)
    _, samples = _read(ctx.output_dir / "audio.wav")
    assert samples.shape == (2, 44100)
    # 0.1 s early or late would be 9% quieter or louder
    assert _rms(samples)[0] == pytest.approx(_ramp_rms(1.0, 2.0), rel=0.02)


def test_mono_at_another_rate_and_an_end_past_the_media(media: Path, tmp_path: Path) -> None:
    ctx = _ctx(tmp_path, {"format": "mp3", "mono": True, "sample_rate": 16000, "start_s": 2.5, "end_s": 60})
    ctx.params["local_path"] = str(media / "clip.mp4")
    ctx.files_roots = (media.resolve(),)
    result = VideoAudioHandler().run(ctx)
    assert result["output"]["sample_rate"] == 16000 and result["output"]["channels"] == 1
    assert result["output_duration_s"] == pytest.approx(RAMP_S - 2.5, abs=AAC_PRIMING_S)
    stream, samples = _read(ctx.output_dir / "audio.mp3")
    assert stream.sample_rate == 16000 and samples.shape[0] == 1


def test_a_linked_video_is_fetched_first(media: Path, tmp_path: Path) -> None:
    with serve(media) as server:
        params = {"url": server.url("clip.mp4"), "format": "flac"}
        with pytest.raises(HandlerError) as raised:  # by default the agent refuses loopback
            VideoAudioHandler().run(_ctx(tmp_path / "refused", params))
        assert (raised.value.kind, raised.value.retryable) == ("unsafe_address", False)
        ctx = _ctx(tmp_path, params)
        ctx.url_policy = ALLOW_ALL  # as with --allow-private-urls
        result = VideoAudioHandler().run(ctx)
    assert result["source"]["size"] == (media / "clip.mp4").stat().st_size
    assert result["output_duration_s"] == pytest.approx(RAMP_S, abs=AAC_PRIMING_S)
    assert (ctx.output_dir / "audio.flac").is_file()


@pytest.mark.parametrize(
    ("file", "params", "kind", "words"),
    [
        ("silent.mp4", {}, "no_audio", "no audio stream"),
        ("notes.mp4", {}, "bad_input", "cannot read notes.mp4"),
        ("clip.mp4", {"start_s": 2.0, "end_s": 2.0}, "bad_params", "end_s (2.0) must be after start_s"),
        ("clip.mp4", {"start_s": 5.0}, "bad_params", "past the end of the media"),
        ("clip.mp4", {"format": "mp3", "sample_rate": 96000}, "bad_params", "mp3 cannot take"),
        ("clip.mp4", {"format": "ogg"}, "bad_params", "format"),
        ("clip.mp4", {"url": "http://127.0.0.1:9/a.mp4"}, "bad_params", "give one source"),
    ],
)
def test_bad_inputs_are_not_retried(
    media: Path, tmp_path: Path, file: str, params: dict[str, Any], kind: str, words: str
) -> None:
    with pytest.raises(HandlerError) as raised:
        VideoAudioHandler().run(_ctx(tmp_path, params, media / file))
    assert (raised.value.kind, raised.value.retryable) == (kind, False)
    assert words in raised.value.message


def test_a_cancelled_extraction_leaves_no_file(media: Path, tmp_path: Path) -> None:
    ctx = _ctx(tmp_path, {}, media / "clip.mp4")
    ctx.cancel(CancelReason.CANCEL_REQUESTED)
    assert VideoAudioHandler().run(ctx) == {"cancelled": True}
    assert list(ctx.output_dir.iterdir()) == []
