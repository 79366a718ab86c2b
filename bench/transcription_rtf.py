"""Real-time factor of transcription: faster-whisper called directly versus through Taskpost.

Generates about a minute of English speech with espeak-ng, then for each model:

1. direct: loads the packaged model with faster-whisper (CPU, int8; loading not timed) and times
   decoding plus transcribing the file;
2. Taskpost: starts a fresh coordinator (SQLite) and one agent through the CLI, uploads the
   file once and submits ``transcription`` jobs one at a time; a job's time is
   ``ended_at - created_at`` as stamped by the coordinator, so it includes the pickup, the
   agent downloading the input, the handler, uploading four outputs and reporting.

Real-time factor = processing seconds / audio seconds (lower is faster); each figure is the
median of ``--repeats`` runs after one warm-up run.

Usage (from the repository root): python -m bench.transcription_rtf [--models tiny.en base]
"""

from __future__ import annotations

import argparse
import signal
import statistics
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from taskpost.agent.handlers.transcription import load_audio
from taskpost.agent.media.whisper import CPU, WhisperModels
from taskpost.launch import ChildProcess, LocalCoordinator, wait_until
from taskpost.protocol import API_PREFIX
from tests.media_fixtures import speech


def _seconds(stamp: str) -> float:
    return datetime.fromisoformat(stamp).timestamp()


def _finished(http: httpx.Client, job_id: str) -> dict[str, Any] | None:
    job: dict[str, Any] = http.get(f"/jobs/{job_id}").json()
    return job if job["state"] in ("completed", "dead") else None


def direct(model_name: str, media: Path, repeats: int, models_dir: Path) -> list[float]:
    """Seconds to decode and transcribe ``media`` with faster-whisper alone, per run."""
    model, _ = WhisperModels(models_dir).get(model_name, CPU)
    times = []
    for _ in range(repeats + 1):
        started = time.perf_counter()
        audio = load_audio(media)
        pieces, _info = model.transcribe(audio, language="en" if model_name == "tiny.en" else None)
        list(pieces)
        times.append(time.perf_counter() - started)
    return times[1:]


def through_taskpost(models: list[str], media: Path, repeats: int, work: Path) -> dict[str, list[float]]:
    """Job seconds (created to ended) per model and run, with one local coordinator and agent."""
    coordinator = LocalCoordinator(work).start()
    agent: ChildProcess | None = None
    auth = {"Authorization": f"Bearer {coordinator.admin_key}"}
    http = httpx.Client(base_url=coordinator.url + API_PREFIX, headers=auth, timeout=60)
    times: dict[str, list[float]] = {name: [] for name in models}
    try:
        key = http.post("/keys", json={"role": "worker"}).json()["key"]
        args = ["--task-type", "transcription", "--health-port", "0", "--log-level", "warning"]
        args += ["--work-dir", str(work / "agent")]
        agent = coordinator.start_agent(key, *args)
        wait_until(lambda: len(http.get("/workers").json()) == 1, 120, "the agent to load its models")
        upload = http.post("/uploads", params={"name": media.name}, content=media.read_bytes())
        upload.raise_for_status()
        inputs = [{"name": media.name, "upload_id": upload.json()["upload_id"]}]
        for name in models:
            params: dict[str, Any] = {"model": name, "language": "en" if name == "tiny.en" else None}
            for run in range(repeats + 1):
                job = http.post("/jobs", json={"type": "transcription", "params": params, "inputs": inputs})
                job_id = job.json()["job"]["id"]
                # Poll slowly: the times come from the coordinator's stamps, and frequent polls
                # would take CPU from the transcription on a small machine.
                done = wait_until(
                    lambda job_id=job_id: _finished(http, job_id), 600, f"job {job_id}", interval_s=1.0
                )
                if done["state"] != "completed":
                    raise RuntimeError(f"job failed: {done['error']}")
                if run:  # the first run is a warm-up
                    times[name].append(_seconds(done["ended_at"]) - _seconds(done["created_at"]))
    finally:
        if agent is not None:
            agent.stop(signal.SIGTERM)
        coordinator.stop()
        http.close()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", nargs="+", default=["tiny.en", "base"])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if missing := speech.missing_tools():
        raise SystemExit(f"needs {', '.join(missing)} on PATH")
    with tempfile.TemporaryDirectory(prefix="taskpost-bench-") as tmp:
        work = Path(tmp)
        media, _text = speech.long_speech(work / "speech.wav")
        audio_s = speech.duration_s(media)
        direct_s = {name: direct(name, media, args.repeats, work / "models") for name in args.models}
        taskpost_s = through_taskpost(args.models, media, args.repeats, work)
    print(f"{audio_s:.1f} s of speech, CPU int8, median of {args.repeats} runs after a warm-up\n")
    print("| model | direct (s) | direct RTF | Taskpost job (s) | Taskpost RTF | overhead |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name in args.models:
        alone, job = statistics.median(direct_s[name]), statistics.median(taskpost_s[name])
        cells = [name, f"{alone:.2f}", f"{alone / audio_s:.3f}", f"{job:.2f}", f"{job / audio_s:.3f}"]
        cells.append(f"{(job - alone) / alone * 100:+.1f}%")
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
