"""Server-sent events framing: ``id: N`` and ``data: {json}`` per event, ``: ping`` comments
while idle. Only ``resume`` is a named event; every other one reaches ``EventSource.onmessage``."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from fastapi.responses import StreamingResponse

from taskpost.protocol import RESUME_KIND, JobStreamEvent

RETRY_MS = 2000
"""How long an ``EventSource`` waits before it reconnects."""
PING = b": ping\n\n"
HEADERS = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}


def frame(event: JobStreamEvent) -> bytes:
    name = f"event: {RESUME_KIND}\n" if event.kind == RESUME_KIND else ""
    return f"{name}id: {event.id}\ndata: {event.model_dump_json(exclude_none=True)}\n\n".encode()


async def frames(events: AsyncIterator[JobStreamEvent], ping_s: float) -> AsyncIterator[bytes]:
    """``events`` framed, with a ping whenever none came for ``ping_s`` seconds."""
    yield f"retry: {RETRY_MS}\n\n".encode()
    pending: asyncio.Future[JobStreamEvent] | None = None
    try:
        while True:
            if pending is None:
                pending = asyncio.ensure_future(anext(events))
            # Waiting on the same future across pings: cancelling anext() would end the generator.
            done, _ = await asyncio.wait({pending}, timeout=ping_s)
            if not done:
                yield PING
                continue
            try:
                event = pending.result()
            except StopAsyncIteration:
                return
            pending = None
            yield frame(event)
    finally:
        if pending is not None and not pending.done():
            pending.cancel()
            with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                await pending
        aclose = getattr(events, "aclose", None)
        if aclose is not None:
            await aclose()


def response(events: AsyncIterator[JobStreamEvent], ping_s: float) -> StreamingResponse:
    """A ``text/event-stream`` response sending ``events`` as they come."""
    return StreamingResponse(frames(events, ping_s), media_type="text/event-stream", headers=HEADERS)
