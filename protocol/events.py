"""What the event streams send: one ``JobStreamEvent`` per ``data:`` line of
``GET /api/v1/jobs/{id}/events/stream`` and ``GET /api/v1/events/stream``."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, JsonValue

from taskpost.protocol.enums import JobState

STREAM_KINDS = frozenset({"state", "progress", "partial"})
"""Event kinds written for the streams; ``GET /jobs/{id}/events`` shows them only with ``?all=true``."""

RESUME_KIND = "resume"
"""Sent (as the named SSE event ``resume``) to a consumer that fell behind, before the stream
closes: reconnect with ``Last-Event-ID`` set to its ``id`` to catch up."""


class JobStreamEvent(BaseModel):
    """One event of a job: a state change, a progress report, a partial output chunk, an incident
    (``attempt_failed``, ``lease_expired``, ...) or ``resume``.

    Ids grow along one job's events; on the namespace feed a client may see an id lower than one
    it saw before (another replica's transaction committed late) and must dedupe by id."""

    id: int
    job_id: str
    kind: str
    at: datetime
    attempt: int | None = None
    worker_id: str | None = None
    detail: str | None = None
    state: JobState | None = None
    progress: float | None = None
    message: str | None = None
    index: int | None = None
    partial: JsonValue = None
    namespace: str | None = None
    type: str | None = None
