"""Reading the coordinator's event streams (server-sent events), blocking and async.

``job_events`` and ``feed`` (and their ``a``-prefixed twins) yield each ``JobStreamEvent`` once:
on a dropped connection, an answer 503, or a ``resume`` event they reconnect with
``Last-Event-ID`` and skip ids they already yielded. A job's stream stops after its terminal
state event. The feed's ids mostly grow, but one may come after a higher one (another replica's
transaction committed later): it is deduplicated by id, not by order.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import anyio
import httpx

from taskpost.client.errors import ServerUnavailable, error_from_response
from taskpost.protocol import API_PREFIX, RESUME_KIND, TERMINAL_STATES, JobState, JobStreamEvent

RECONNECT_S = 1.0
"""The wait before a reconnect when the server did not say (``retry:``)."""
MAX_FAILURES = 10
"""Failed connects in a row before the error is raised."""
_SEEN_LIMIT = 100_000


def job_path(job_id: str) -> str:
    return f"{API_PREFIX}/jobs/{job_id}/events/stream"


FEED_PATH = f"{API_PREFIX}/events/stream"


def feed_params(job_type: str | None = None, state: JobState | str | None = None) -> dict[str, str]:
    params = {"type": job_type} if job_type else {}
    if state is not None:
        params["state"] = JobState(state).value
    return params


@dataclass
class SseParser:
    """Lines of a ``text/event-stream`` in, ``(event name, id, data)`` out once a blank line ends one."""

    retry_s: float | None = None
    _event: str = ""
    _id: str | None = None
    _data: list[str] = field(default_factory=list)

    def feed(self, line: str) -> tuple[str, str | None, str] | None:
        if line == "":
            if not self._data:
                self._event = ""
                return None
            message = (self._event or "message", self._id, "\n".join(self._data))
            self._event, self._id, self._data = "", None, []
            return message
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id":
            self._id = value
        elif name == "retry" and value.isdigit():
            self.retry_s = int(value) / 1000
        return None


def parse(lines: Iterable[str]) -> Iterator[JobStreamEvent]:
    """The events in ``lines`` of a stream (a ``resume`` included)."""
    parser = SseParser()
    for line in lines:
        message = parser.feed(line)
        if message is not None:
            yield JobStreamEvent.model_validate_json(message[2])


@dataclass
class _Cursor:
    """Where a reconnect resumes, and which ids were yielded already."""

    last_event_id: int | None
    stop_at_end: bool
    seen: set[int] = field(default_factory=set)
    done: bool = False
    failures: int = 0
    resumed: bool = False
    """The last message was ``resume``: the server asks for a reconnect."""

    def headers(self) -> dict[str, str]:
        return {} if self.last_event_id is None else {"Last-Event-ID": str(self.last_event_id)}

    def take(self, event: JobStreamEvent) -> bool:
        """Whether to yield ``event``; notes where to resume."""
        self.resumed = event.kind == RESUME_KIND
        if self.resumed:
            self.last_event_id = event.id
            return False
        self.failures = 0
        self.last_event_id = event.id if self.last_event_id is None else max(self.last_event_id, event.id)
        if event.id in self.seen:
            return False
        if len(self.seen) >= _SEEN_LIMIT:
            self.seen.clear()
        self.seen.add(event.id)
        if self.stop_at_end and event.kind == "state" and event.state in TERMINAL_STATES:
            self.done = True
        return True

    def ended(self) -> None:
        """The server closed the stream: a job's stream ends only when the job has ended (or is
        gone), unless it asked for a resume."""
        if self.stop_at_end and not self.resumed:
            self.done = True
        self.resumed = False

    def failed(self, error: Exception) -> None:
        self.failures += 1
        if self.failures >= MAX_FAILURES:
            raise error


def _check(response: httpx.Response, body: bytes) -> None:
    if response.status_code != 200:
        response._content = body
        raise error_from_response(response)


def stream(
    http: httpx.Client,
    path: str,
    *,
    params: dict[str, str] | None = None,
    last_event_id: int | None = None,
    stop_at_end: bool = True,
) -> Iterator[JobStreamEvent]:
    """The events of the stream at ``path`` on ``http`` (a client with base URL and auth headers)."""
    cursor = _Cursor(last_event_id, stop_at_end)
    parser = SseParser()
    while not cursor.done:
        parser = SseParser(retry_s=parser.retry_s)  # a message cut by a disconnect is dropped
        try:
            with http.stream(
                "GET", path, params=params, headers=cursor.headers(), timeout=_read_timeout(http)
            ) as r:
                _check(r, r.read() if r.status_code != 200 else b"")
                for line in r.iter_lines():
                    message = parser.feed(line)
                    if message is None:
                        continue
                    event = JobStreamEvent.model_validate_json(message[2])
                    if cursor.take(event):
                        yield event
                    if cursor.done:
                        return
            cursor.ended()
        except (httpx.TransportError, ServerUnavailable) as error:
            cursor.failed(error)
        if cursor.done:
            return
        time.sleep(parser.retry_s or RECONNECT_S)


async def astream(
    http: httpx.AsyncClient,
    path: str,
    *,
    params: dict[str, str] | None = None,
    last_event_id: int | None = None,
    stop_at_end: bool = True,
) -> AsyncIterator[JobStreamEvent]:
    """``stream`` for an ``httpx.AsyncClient``."""
    cursor = _Cursor(last_event_id, stop_at_end)
    parser = SseParser()
    while not cursor.done:
        parser = SseParser(retry_s=parser.retry_s)  # a message cut by a disconnect is dropped
        try:
            async with http.stream(
                "GET", path, params=params, headers=cursor.headers(), timeout=_read_timeout(http)
            ) as r:
                _check(r, await r.aread() if r.status_code != 200 else b"")
                async for line in r.aiter_lines():
                    message = parser.feed(line)
                    if message is None:
                        continue
                    event = JobStreamEvent.model_validate_json(message[2])
                    if cursor.take(event):
                        yield event
                    if cursor.done:
                        return
            cursor.ended()
        except (httpx.TransportError, ServerUnavailable) as error:
            cursor.failed(error)
        if cursor.done:
            return
        await anyio.sleep(parser.retry_s or RECONNECT_S)


def _read_timeout(http: Any) -> httpx.Timeout:
    """The client's timeouts, with no read timeout: a stream may be quiet between pings."""
    timeout: httpx.Timeout = http.timeout
    return httpx.Timeout(timeout.connect, read=None, write=timeout.write, pool=timeout.pool)
