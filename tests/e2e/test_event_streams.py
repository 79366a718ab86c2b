"""Event streams against a real coordinator (uvicorn) and agent: a job's stream follows it to its
end, resumes without duplicates, drops a consumer that never reads, and ends at shutdown."""

from __future__ import annotations

import signal
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import anyio
import httpx
import pytest

from taskpost.client import streams
from taskpost.launch import wait_until
from taskpost.protocol import API_PREFIX, JobStreamEvent
from tests.e2e.conftest import ADMIN_KEY, Cluster
from tests.media_fixtures import speech


def follow(cluster: Cluster, job_id: str, last_event_id: int | None = None) -> list[JobStreamEvent]:
    with httpx.Client(base_url=cluster.url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as http:
        return list(streams.stream(http, streams.job_path(job_id), last_event_id=last_event_id))


def test_a_job_stream_follows_the_job_until_it_ends(cluster: Cluster) -> None:
    job = cluster.submit(params={"sleep_s": 2})
    received: list[JobStreamEvent] = []
    reader = threading.Thread(target=lambda: received.extend(follow(cluster, job["id"])), daemon=True)
    reader.start()
    cluster.start_agent()
    reader.join(timeout=60)
    assert not reader.is_alive(), "the stream did not end after the job completed"

    kinds = [(e.kind, e.state.value if e.state else None) for e in received]
    assert kinds[:2] == [("state", "queued"), ("state", "processing")]
    assert kinds[-1] == ("state", "completed")
    progress = [e.progress for e in received if e.kind == "progress"]
    assert len(progress) >= 2 and progress == sorted(progress)  # it moved, as it happened
    ids = [e.id for e in received]
    assert ids == sorted(set(ids))

    # A reconnect from the 2nd event replays the rest, once each, and ends.
    assert [e.id for e in follow(cluster, job["id"], last_event_id=ids[1])] == ids[2:]


def test_a_raw_reconnect_with_last_event_id(cluster: Cluster) -> None:
    cluster.start_agent()
    job = cluster.submit()
    cluster.wait_job(job["id"], {"completed"})
    url = f"/jobs/{job['id']}/events/stream"
    first = cluster.http.get(url).text
    assert first.startswith("retry: 2000\n\n")
    ids = [int(line[4:]) for line in first.splitlines() if line.startswith("id: ")]
    again = cluster.http.get(url, headers={"Last-Event-ID": str(ids[0])}).text
    assert [int(line[4:]) for line in again.splitlines() if line.startswith("id: ")] == ids[1:]

    async def read_async() -> list[int]:
        headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
        async with httpx.AsyncClient(base_url=cluster.url, headers=headers) as http:
            return [event.id async for event in streams.astream(http, streams.job_path(job["id"]))]

    # In a thread of its own: an event loop may already run in this one (anyio's test runner).
    with ThreadPoolExecutor(1) as pool:
        assert pool.submit(anyio.run, read_async).result(timeout=60) == ids


@pytest.fixture
def small_buffers(tmp_path: Path) -> Iterator[Cluster]:
    cluster = Cluster(tmp_path)
    cluster.coordinator.env["TASKPOST_EVENTS_BUFFER"] = "4"
    cluster.start_coordinator()
    try:
        yield cluster
    finally:
        cluster.stop()


def open_raw_feed(cluster: Cluster) -> socket.socket:
    """A feed request on a socket that is then never read."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", cluster.port))
    request = (
        f"GET {API_PREFIX}/events/stream HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {ADMIN_KEY}\r\n\r\n"
    )
    sock.sendall(request.encode())
    return sock


def read_until_closed(sock: socket.socket, timeout_s: float) -> bytes:
    sock.settimeout(timeout_s)
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    return received


def test_a_consumer_that_never_reads_is_told_to_resume(small_buffers: Cluster) -> None:
    cluster = small_buffers
    sock = open_raw_feed(cluster)
    try:
        wait_until(lambda: b"retry:" in sock.recv(4096, socket.MSG_PEEK), 10, "the stream's first bytes")
        started = time.monotonic()
        response = cluster.http.post("/jobs/batch", json={"jobs": [{"type": "noop"} for _ in range(200)]})
        assert response.status_code in (200, 201), response.text
        # The coordinator stays responsive meanwhile.
        assert cluster.http.get("/stats", timeout=5).status_code == 200
        received = read_until_closed(sock, timeout_s=20)
    finally:
        sock.close()
    assert b"event: resume\n" in received, received[-500:]
    assert time.monotonic() - started < 20


def test_shutdown_ends_open_streams_with_resume(cluster: Cluster) -> None:
    job = cluster.submit()  # no agent: it stays queued, its stream stays open
    lines: list[str] = []
    ended = threading.Event()

    def read() -> None:
        with cluster.http.stream("GET", f"/jobs/{job['id']}/events/stream", timeout=30) as response:
            lines.extend(response.iter_lines())
        ended.set()

    threading.Thread(target=read, daemon=True).start()
    wait_until(lambda: any(line.startswith("data: ") for line in lines) or None, 10, "the first event")
    cluster.coordinator.signal(signal.SIGTERM)
    assert ended.wait(timeout=4), "the stream outlived the shutdown"
    assert "event: resume" in lines
    cluster.coordinator.wait_exit(timeout_s=4)  # raises if it is still waiting on the stream


@pytest.mark.media
def test_a_transcription_stream_shows_the_transcript_growing(cluster: Cluster) -> None:
    pytest.importorskip("faster_whisper", reason="needs taskpost[stt]")
    if missing := speech.missing_tools():
        pytest.skip(f"needs {', '.join(missing)} to generate test speech")
    registered = cluster.client(cluster.worker_key).post("/workers/register", json={"task_types": ["noop"]})
    if not registered.json()["cadence"].get("partial_output"):
        pytest.skip("this coordinator does not take partial output (server.services.workers.cadence)")
    folder = cluster.tmp_path / "media"
    folder.mkdir()
    wav = speech.speak(speech.ENGLISH_TEXT, folder / "speech.wav")
    cluster.start_agent("--task-type", "transcription", "--work-dir", str(cluster.tmp_path / "work"))
    cluster.wait_agents(1, timeout_s=60)
    upload = cluster.http.post("/uploads", params={"name": "speech.wav"}, content=wav.read_bytes())
    assert upload.status_code == 201, upload.text
    job = cluster.submit(
        type="transcription",
        params={"language": "en"},
        inputs=[{"name": "speech.wav", "upload_id": upload.json()["upload_id"]}],
    )
    events = follow(cluster, job["id"])

    assert events[-1].state is not None and events[-1].state.value == "completed"
    partial = [e for e in events if e.kind == "partial"]
    assert [e.index for e in partial] == list(range(len(partial))) and len(partial) >= 2
    chunks = [e.partial for e in partial]
    assert all(isinstance(c, dict) and set(c) == {"start", "end", "text"} for c in chunks)
    transcript = cluster.http.get(f"/jobs/{job['id']}/outputs/transcript.txt").text
    assert " ".join(c["text"] for c in chunks if isinstance(c, dict) and c["text"]) == transcript.strip()


def test_the_feed_shows_its_namespace_only_filtered_by_state(cluster: Cluster) -> None:
    keys = {
        ns: cluster.http.post("/keys", json={"role": "client", "namespaces": [ns]}).json()["key"]
        for ns in "ab"
    }
    cluster.start_agent()
    theirs = cluster.client(keys["b"]).post("/jobs", json={"type": "noop"}).json()["job"]
    cluster.wait_job(theirs["id"], {"completed"})  # its events come first in the log
    ours = cluster.client(keys["a"]).post("/jobs", json={"type": "noop"}).json()["job"]
    cluster.wait_job(ours["id"], {"completed"})

    seen: list[JobStreamEvent] = []
    with httpx.Client(base_url=cluster.url, headers={"Authorization": f"Bearer {keys['a']}"}) as http:
        params = streams.feed_params("noop", "completed")
        for event in streams.stream(
            http, streams.FEED_PATH, params=params, last_event_id=0, stop_at_end=False
        ):
            seen.append(event)
            break
    assert [(e.job_id, e.kind, e.state) for e in seen] == [(ours["id"], "state", "completed")]
    assert seen[0].namespace == "a"
