"""Connection limits of a real ``taskpost server``: header and keep-alive timeouts, the connection
cap's JSON 503, a process out of file descriptors that keeps its log short, and the memory a
flood of oversized bodies leaves behind. Raw sockets on 127.0.0.1; every wait has a deadline."""

from __future__ import annotations

import http.client
import json
import resource
import socket
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest

from taskpost.launch import LocalCoordinator, wait_until
from taskpost.protocol import API_PREFIX

CLOSE_DEADLINE_S = 30
"""How long a connection the coordinator should close may stay open: far past every timeout set here."""
REQUEST = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n"


def _read_until_closed(sock: socket.socket, deadline_s: float = CLOSE_DEADLINE_S) -> bytes:
    """Everything the coordinator sends until it closes the connection; fails if it never does."""
    sock.settimeout(deadline_s)
    received = b""
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except ConnectionResetError:
        pass
    except TimeoutError:
        pytest.fail(f"the connection was still open after {deadline_s} s; received {received!r}")
    return received


def _connect(coordinator: LocalCoordinator) -> socket.socket:
    return socket.create_connection(("127.0.0.1", coordinator.port), timeout=CLOSE_DEADLINE_S)


def test_connections_that_send_nothing_or_half_their_headers_are_closed(tmp_path: Path) -> None:
    settings = {"TASKPOST_HEADER_TIMEOUT_S": "1", "TASKPOST_KEEP_ALIVE_S": "1"}
    coordinator = LocalCoordinator(tmp_path, settings=settings).start()
    try:
        with ExitStack() as stack:
            silent = stack.enter_context(_connect(coordinator))
            half = stack.enter_context(_connect(coordinator))
            half.sendall(REQUEST)  # no blank line: the headers never end
            trickle = stack.enter_context(_connect(coordinator))
            trickle.sendall(b"GET /he")
            kept_alive = stack.enter_context(_connect(coordinator))
            kept_alive.sendall(REQUEST + b"\r\n")

            assert _read_until_closed(silent) == b""
            assert _read_until_closed(half) == b""
            assert _read_until_closed(trickle) == b""
            # A served connection stays open for its next request, then is closed when idle.
            assert _read_until_closed(kept_alive).startswith(b"HTTP/1.1 200 ")
        assert httpx.get(f"{coordinator.url}/health").status_code == 200
    finally:
        coordinator.stop()


def _get_health(connection: http.client.HTTPConnection) -> tuple[http.client.HTTPResponse, bytes]:
    connection.request("GET", "/health")
    response = connection.getresponse()
    return response, response.read()


def test_connections_past_the_cap_are_answered_with_the_json_503(tmp_path: Path) -> None:
    cap = 4
    settings = {
        "TASKPOST_MAX_CONNECTIONS": str(cap),
        "TASKPOST_KEEP_ALIVE_S": "60",
        "TASKPOST_HEADER_TIMEOUT_S": "60",
    }
    coordinator = LocalCoordinator(tmp_path, settings=settings).start()
    held: list[http.client.HTTPConnection] = []

    def served_connection() -> http.client.HTTPConnection | None:
        connection = http.client.HTTPConnection("127.0.0.1", coordinator.port, timeout=CLOSE_DEADLINE_S)
        if _get_health(connection)[0].status == 200:
            return connection
        connection.close()  # the health check's own connection was not closed yet: try again
        return None

    try:
        for _ in range(cap):
            held.append(wait_until(served_connection, 30, "a served connection"))

        refused = http.client.HTTPConnection("127.0.0.1", coordinator.port, timeout=CLOSE_DEADLINE_S)
        response, body = _get_health(refused)
        refused.close()
        assert response.status == 503, body
        assert json.loads(body)["error"]["code"] == "overloaded"
        assert json.loads(body)["error"]["details"] == {"max_connections": cap}
        assert response.getheader("Retry-After", "").isdigit()
        assert response.getheader("Connection") == "close"

        # The connections already open are still served; one closed makes room for a newcomer.
        assert _get_health(held[0])[0].status == 200
        held.pop().close()
        wait_until(served_connection, 30, "a connection served once one was closed").close()
    finally:
        for connection in held:
            connection.close()
        coordinator.stop()


OPEN_FILES = 128
"""The coordinator's RLIMIT_NOFILE in the next test: a few dozen connections past it run it out."""


def _few_open_files() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (OPEN_FILES, OPEN_FILES))


def _kind_of_answer(answer: bytes) -> str:
    if not answer:
        return "closed unanswered"
    head, _, body = answer.partition(b"\r\n\r\n")
    if head.startswith(b"HTTP/1.1 200 "):
        return "ok"
    if head.startswith(b"HTTP/1.1 503 ") and json.loads(body)["error"]["code"] == "overloaded":
        return "overloaded"
    return answer.decode(errors="replace")


def test_running_out_of_file_descriptors_keeps_the_log_short_and_the_server_alive(tmp_path: Path) -> None:
    # Before, accept() failing with EMFILE logged hundreds of thousands of identical lines.
    coordinator = LocalCoordinator(tmp_path, preexec_fn=_few_open_files).start()
    try:
        with ExitStack() as stack:
            sockets = [stack.enter_context(_connect(coordinator)) for _ in range(3 * OPEN_FILES)]
            for sock in sockets:
                sock.sendall(REQUEST + b"Connection: close\r\n\r\n")
            answers = [_read_until_closed(sock) for sock in sockets]
        kinds = [_kind_of_answer(answer) for answer in answers]
        print({kind: kinds.count(kind) for kind in set(kinds)})
        assert "overloaded" in kinds
        assert set(kinds) <= {"ok", "overloaded", "closed unanswered"}, kinds

        wait_until(
            lambda: httpx.get(f"{coordinator.url}/health", timeout=5).status_code == 200,
            30,
            "the coordinator to answer once the connections are gone",
        )
        lines = coordinator.process.output().splitlines()
        print(f"{len(lines)} log lines")
        assert len(lines) < 200, "\n".join(lines[:40])
    finally:
        coordinator.stop()


BODIES = 8
BODY_BYTES = 100 * 1024**2
CHUNK = b"[" * (1024**2)
RSS_MARGIN = 50 * 1024**2
"""The bound: a flood of oversized bodies may raise the coordinator's peak RSS this much at most."""
MAX_UPLOAD_BYTES = 8 * 1024**2


def _memory(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak RSS) of a process, in bytes."""
    status = Path(f"/proc/{pid}/status").read_text()
    fields = dict(line.split(":", 1) for line in status.splitlines() if line.startswith(("VmRSS", "VmHWM")))
    return {name: int(value.split()[0]) * 1024 for name, value in fields.items()}


def _reset_peak(pid: int) -> None:
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # resets VmHWM to the current RSS


def _body() -> Iterator[bytes]:
    """BODY_BYTES streamed in 1 MiB chunks, with no Content-Length: sent chunked."""
    for _ in range(BODY_BYTES // len(CHUNK)):
        yield CHUNK


def _post_oversized(url: str, headers: dict[str, str]) -> int | str:
    """The status answered to a BODY_BYTES body, or the transport error ended it early."""
    try:
        return httpx.post(url, content=_body(), headers=headers, timeout=120).status_code
    except httpx.TransportError as exc:
        return type(exc).__name__  # the coordinator closed the connection without reading it all


def _flood(coordinator: LocalCoordinator, key: str | None) -> tuple[list[int | str], int]:
    """BODIES concurrent oversized bodies to each of the batch and upload routes: the answers and
    how far the coordinator's peak RSS rose over its RSS before."""
    assert coordinator.process.popen is not None
    pid = coordinator.process.popen.pid
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    headers["content-type"] = "application/json"
    routes = [f"{coordinator.url}{API_PREFIX}/jobs/batch", f"{coordinator.url}{API_PREFIX}/uploads"]
    _reset_peak(pid)
    before = _memory(pid)
    with ThreadPoolExecutor(2 * BODIES) as pool:
        answers = list(pool.map(lambda url: _post_oversized(url, headers), routes * BODIES))
    after = _memory(pid)
    rise = after["VmHWM"] - before["VmRSS"]
    mib = 1024**2
    print(
        f"{'keyed' if key else 'no key'}: RSS before {before['VmRSS'] / mib:.0f} MiB, "
        f"peak during {after['VmHWM'] / mib:.0f} MiB (+{rise / mib:.1f} MiB, bound +{RSS_MARGIN / mib:.0f}), "
        f"answers {sorted(map(str, answers))}"
    )
    return answers, rise


@pytest.mark.slow
def test_oversized_bodies_leave_the_coordinators_memory_flat(tmp_path: Path) -> None:
    settings = {
        "TASKPOST_MAX_UPLOAD_BYTES": str(MAX_UPLOAD_BYTES),
        "TASKPOST_AUTH_FAILURE_BURST": "1000",  # the keyed flood must not find its address refused
    }
    coordinator = LocalCoordinator(tmp_path, settings=settings).start()
    try:
        admin = {"Authorization": f"Bearer {coordinator.admin_key}"}
        with httpx.Client(base_url=coordinator.url + API_PREFIX, headers=admin, timeout=30) as http:
            client_key = http.post("/keys", json={"role": "client"}).json()["key"]
            # A first request, so that the baseline includes what serving one loads.
            assert http.post("/jobs/batch", json={"jobs": [{"type": "noop"}]}).status_code == 201

        answers, rise = _flood(coordinator, key=None)
        assert rise < RSS_MARGIN
        assert all(answer == 401 or isinstance(answer, str) for answer in answers), answers

        # A valid key, but bodies over TASKPOST_MAX_JSON_BYTES and TASKPOST_MAX_UPLOAD_BYTES.
        answers, rise = _flood(coordinator, key=client_key)
        assert rise < RSS_MARGIN
        assert all(answer == 413 or isinstance(answer, str) for answer in answers), answers
    finally:
        coordinator.stop()
