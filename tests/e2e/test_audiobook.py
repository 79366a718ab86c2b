"""Audiobooks through the whole system: a generated PDF read aloud by a real agent, the chapter
times checked against the audio files, the chapter marks read back, and the speech transcribed
back with the packaged Whisper tiny.en; then one chapter read by the Piper voice."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Cluster
from tests.media_fixtures import books
from tests.media_fixtures.speech import normalise

pytestmark = [pytest.mark.e2e, pytest.mark.media, pytest.mark.slow]

av = pytest.importorskip("av", reason="needs taskpost[audiobook]")
jiwer = pytest.importorskip("jiwer", reason="needs jiwer (dev dependency)")
pytest.importorskip("reportlab", reason="needs reportlab (dev dependency)")
pytest.importorskip("faster_whisper", reason="transcribing back needs taskpost[stt]")
if shutil.which("espeak-ng") is None:
    pytest.skip("needs espeak-ng (apt-get install espeak-ng)", allow_module_level=True)

AGENT_START_S = 60
JOB_S = 120
MAX_WER = 0.2
PIPER_TEXT = (
    "The Letter",
    "She opened the letter by the window. It was from her brother, who lived far away in the north.",
)


def _upload(cluster: Cluster, path: Path) -> list[dict[str, str]]:
    response = cluster.http.post("/uploads", params={"name": path.name}, content=path.read_bytes())
    assert response.status_code == 201, response.text
    return [{"name": path.name, "upload_id": response.json()["upload_id"]}]


def _download(cluster: Cluster, job: dict[str, Any], name: str, folder: Path) -> Path:
    response = cluster.http.get(f"/jobs/{job['id']}/outputs/{name}")
    assert response.status_code == 200, response.text
    path = folder / f"{job['id']}-{name}"
    path.write_bytes(response.content)
    return path


def _seconds(path: Path) -> float:
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        return sum(frame.samples for frame in container.decode(stream)) / stream.rate


def _transcriber(tmp_path: Path) -> Any:
    from taskpost.agent.media.whisper import CPU, WhisperModels

    model, _ = WhisperModels(tmp_path / "models").get("tiny.en", CPU)
    return lambda path: " ".join(s.text for s in model.transcribe(str(path), beam_size=1, language="en")[0])


def _wer(expected: str, heard: str) -> float:
    return float(jiwer.wer(normalise(expected), normalise(heard)))


def test_a_pdf_becomes_an_audiobook_whose_chapters_say_the_text(cluster: Cluster, tmp_path: Path) -> None:
    cluster.start_agent("--task-type", "audiobook", "--work-dir", str(cluster.tmp_path / "work"))
    cluster.wait_agents(1, timeout_s=AGENT_START_S)
    pdf = books.write_pdf(tmp_path / "evenings.pdf")
    job = cluster.submit(type="audiobook", inputs=_upload(cluster, pdf), params={"format": "mp3"})
    with_piper = importlib.util.find_spec("piper") is not None
    if with_piper:
        text = tmp_path / "letter.md"
        text.write_text(f"# {PIPER_TEXT[0]}\n\n{PIPER_TEXT[1]}\n", encoding="utf-8")
        piper_job = cluster.submit(
            type="audiobook", inputs=_upload(cluster, text), params={"engine": "piper", "voice": "joe"}
        )

    done = cluster.wait_job(job["id"], {"completed", "dead", "failed"}, timeout_s=JOB_S)
    assert done["state"] == "completed", done
    result = done["result"]
    assert (result["engine"], result["voice"], result["source_format"]) == ("espeak", "en-us", "pdf")
    toc = result["toc"]
    assert [entry["title"] for entry in toc] == [title for title, _ in books.CHAPTERS]
    names = {output["name"] for output in done["outputs"]}
    assert names == {"book.mp3", "toc.json", "chapter-01.mp3", "chapter-02.mp3", "chapter-03.mp3"}

    transcribe = _transcriber(tmp_path)
    start = 0.0
    for entry, (title, text) in zip(toc, books.CHAPTERS, strict=True):
        chapter = _download(cluster, done, entry["file"], tmp_path)
        assert entry["start_s"] == pytest.approx(start, abs=0.05)  # the chapters before, as encoded
        start += _seconds(chapter)
        wer = _wer(f"{title}. {text}", transcribe(chapter))
        assert wer < MAX_WER, (entry["title"], wer)
    book = _download(cluster, done, "book.mp3", tmp_path)
    with av.open(str(book)) as container:
        marks = [(m["metadata"]["title"], float(m["start"] * m["time_base"])) for m in container.chapters()]
    assert [title for title, _ in marks] == [entry["title"] for entry in toc]
    assert [at for _, at in marks] == pytest.approx([entry["start_s"] for entry in toc], abs=0.05)
    assert _seconds(book) == pytest.approx(start, abs=0.05)
    assert done["progress"] == 1.0

    if with_piper:
        spoken = cluster.wait_job(piper_job["id"], {"completed", "dead", "failed"}, timeout_s=JOB_S)
        assert spoken["state"] == "completed", spoken
        assert (spoken["result"]["engine"], spoken["result"]["voice"]) == ("piper", "en_US-joe-medium")
        (entry,) = spoken["result"]["toc"]
        chapter = _download(cluster, spoken, entry["file"], tmp_path)
        wer = _wer(f"{PIPER_TEXT[0]}. {PIPER_TEXT[1]}", transcribe(chapter))
        assert wer < MAX_WER, wer
