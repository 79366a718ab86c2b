"""Event streams (server-sent events): one job's events until it ends, and a namespace's feed."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Query
from fastapi.responses import StreamingResponse

from taskpost.protocol import TASK_TYPE_PATTERN, JobState
from taskpost.server.api import sse
from taskpost.server.api.deps import CoordinatorDep, JobScopeDep
from taskpost.server.services import streams

router = APIRouter(tags=["events"])

STREAM_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "Server-sent events: `id: N` and `data:` one JobStreamEvent as JSON per event; "
        "`event: resume` when the stream fell behind or the coordinator stops (reconnect with "
        "Last-Event-ID); `: ping` comments while idle.",
        "content": {"text/event-stream": {}},
    }
}

LastEventIdQuery = Annotated[
    int | None, Query(ge=0, description="Resume after this event id (the Last-Event-ID header wins).")
]
LastEventIdHeader = Annotated[int | None, Header(alias="Last-Event-ID", ge=0)]


@router.get("/jobs/{job_id}/events/stream", response_class=StreamingResponse, responses=STREAM_RESPONSES)
async def job_event_stream(
    job_id: str,
    coord: CoordinatorDep,
    scope: JobScopeDep,
    last_event_id: LastEventIdQuery = None,
    last_event_id_header: LastEventIdHeader = None,
) -> StreamingResponse:
    """The job's state changes, progress, partial output and incidents as they happen; the
    stream ends after the job's terminal state event (at once for a finished job, after its log)."""
    resume_at = last_event_id_header if last_event_id_header is not None else last_event_id
    events = await streams.job_stream(coord, job_id, scope, resume_at)
    return sse.response(events, coord.settings.events_ping_s)


@router.get("/events/stream", response_class=StreamingResponse, responses=STREAM_RESPONSES)
async def event_feed(
    coord: CoordinatorDep,
    scope: JobScopeDep,
    type: Annotated[
        str | None, Query(pattern=TASK_TYPE_PATTERN, description="Only jobs of this type.")
    ] = None,
    state: Annotated[JobState | None, Query(description="Only state events into this state.")] = None,
    last_event_id: LastEventIdQuery = None,
    last_event_id_header: LastEventIdHeader = None,
) -> StreamingResponse:
    """Every event of the namespace's jobs as it happens (never ends). Ids mostly grow; dedupe by id."""
    resume_at = last_event_id_header if last_event_id_header is not None else last_event_id
    events = await streams.feed(coord, scope, type, state, resume_at)
    return sse.response(events, coord.settings.events_ping_s)
