"""The dashboard's pages (GET): overview, jobs, one job, agents, dead letters, static files."""

from __future__ import annotations

import json
import re
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import JSONResponse, Response

from taskpost.protocol import TASK_TYPE_PATTERN, JobState, Priority
from taskpost.server.api import sse
from taskpost.server.api.deps import CoordinatorDep
from taskpost.server.api.files import blob_response
from taskpost.server.dashboard import queries, views
from taskpost.server.dashboard.queries import ListFilters
from taskpost.server.dashboard.sessions import Visitor, namespaces_text
from taskpost.server.dashboard.web import DashboardRoute, VisitorDep, login_page
from taskpost.server.errors import InvalidParams, NotFound
from taskpost.server.services import events, jobs, streams, workers
from taskpost.server.services.jobs import CURSOR_PATTERN

router = APIRouter(prefix="/dashboard", route_class=DashboardRoute, include_in_schema=False)

_ID_PREFIX = re.compile(r"[0-9a-f-]{1,36}")


def _context(visitor: Visitor, **values: Any) -> dict[str, Any]:
    return {"visitor": visitor, "who": namespaces_text(visitor.principal), "csrf": visitor.csrf, **values}


@router.get("/static/{name}")
async def static(name: str, request: Request) -> Response:
    found = views.static_file(name)
    if found is None:
        raise NotFound(f"no dashboard file named {name!r}")
    body, etag = found
    headers = {"ETag": etag, "Cache-Control": "no-cache"}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    media_type = views.STATIC_TYPES["." + name.rpartition(".")[2]]
    return Response(body, media_type=media_type, headers=headers)


@router.get("/login")
async def login_form(request: Request, coord: CoordinatorDep) -> Response:
    return login_page(request, coord, next_path=request.query_params.get("next", "/dashboard"))


@router.get("")
async def overview(coord: CoordinatorDep, visitor: VisitorDep) -> Response:
    async with coord.db.read() as conn:
        counts = await queries.count_rows(conn, visitor.scope)
        series = await queries.per_minute(conn, visitor.scope, coord.clock())
    agents = await workers.list_workers(coord, namespace=visitor.scope)
    online = [agent for agent in agents if agent.alive]
    return views.page(
        "overview.html",
        **_context(
            visitor,
            page="overview",
            counts=counts,
            states=queries.states_seen(counts),
            series=series,
            agents_online=len(online),
            agents_draining=sum(agent.draining for agent in online),
        ),
    )


def _filters(request: Request) -> tuple[ListFilters, dict[str, str]]:
    """The list's filters from the query string; a bad value is a 422 that names its field."""
    params = {name: value.strip() for name, value in request.query_params.items() if value.strip()}
    state = params.get("state")
    if state is not None and state not in {s.value for s in JobState}:
        raise InvalidParams(f"state must be one of: {', '.join(s.value for s in JobState)}", field="state")
    priority = params.get("priority")
    if priority is not None and priority not in {p.value for p in Priority}:
        raise InvalidParams(
            f"priority must be one of: {', '.join(p.value for p in Priority)}", field="priority"
        )
    job_type = params.get("type")
    if job_type is not None and not re.fullmatch(TASK_TYPE_PATTERN, job_type):
        raise InvalidParams("type must be a job type name (lower-case letters, digits, _ . -)", field="type")
    q = params.get("q", "").lower() or None
    if q is not None and not _ID_PREFIX.fullmatch(q):
        raise InvalidParams("q must be the start of a job id (hex digits and dashes)", field="q")
    cursor = params.get("cursor")
    if cursor is not None and not re.fullmatch(CURSOR_PATTERN, cursor):
        raise InvalidParams("cursor must be a value from a 'next page' link", field="cursor")
    filters = ListFilters(
        state=state,
        job_type=job_type,
        priority=Priority(priority) if priority else None,
        id_prefix=q,
        before_seq=int(cursor) if cursor else None,
    )
    kept: dict[str, str] = {
        name: params[name] for name in ("state", "type", "priority", "q") if name in params
    }
    return filters, kept


@router.get("/jobs")
async def job_list(request: Request, coord: CoordinatorDep, visitor: VisitorDep) -> Response:
    filters, kept = _filters(request)
    async with coord.db.read() as conn:
        rows, next_seq = await queries.list_page(conn, visitor.scope, filters)
    return views.page(
        "jobs.html",
        **_context(
            visitor,
            page="jobs",
            rows=rows,
            next_query={**kept, "cursor": str(next_seq)} if next_seq is not None else None,
            filters=kept,
            states=[s.value for s in JobState],
            priorities=[p.value for p in Priority],
            rank_names={p.rank: p.value for p in Priority},
        ),
    )


def _chunk_text(chunk: Any) -> str:
    if isinstance(chunk, str):
        return chunk
    text = chunk.get("text") if isinstance(chunk, dict) else None
    if isinstance(text, str):
        return text
    return json.dumps(chunk, ensure_ascii=False)


async def _job_and_events(coord: CoordinatorDep, job_id: str, visitor: Visitor) -> tuple[Any, list[Any]]:
    async with coord.db.read() as conn:
        job = await jobs.get(coord, job_id, visitor.scope)
        timeline = await events.list_for_job(conn, job_id, all=True)
    return job, timeline


def _partial(timeline: list[Any]) -> list[str]:
    return [
        _chunk_text(event.data.get("chunk"))
        for event in timeline
        if event.kind == "partial" and isinstance(event.data, dict)
    ]


@router.get("/jobs/{job_id}")
async def job_page(job_id: str, coord: CoordinatorDep, visitor: VisitorDep) -> Response:
    job, timeline = await _job_and_events(coord, job_id, visitor)
    shown = max((event.id or 0 for event in timeline), default=0)
    return views.page(
        "job.html",
        **_context(
            visitor,
            page="jobs",
            job=job,
            timeline=[event for event in timeline if event.kind not in ("progress", "partial")],
            partial=_partial(timeline),
            poll_url=f"/dashboard/jobs/{job.id}/state.json",
            stream_url=f"/dashboard/jobs/{job.id}/events/stream?after={shown}",
        ),
    )


@router.get("/jobs/{job_id}/state.json")
async def job_state(job_id: str, coord: CoordinatorDep, visitor: VisitorDep) -> Response:
    """What the job page's script polls: the state, progress and partial output, no reload."""
    job, timeline = await _job_and_events(coord, job_id, visitor)
    return JSONResponse(
        {
            "state": job.state.value,
            "terminal": job.state.is_terminal,
            "progress": job.progress,
            "message": job.progress_message,
            "attempts": job.attempts,
            "started_at": job.started_at.isoformat() if job.started_at else None,
            "ended_at": job.ended_at.isoformat() if job.ended_at else None,
            "worker_id": job.worker_id,
            "partial": _partial(timeline),
        }
    )


@router.get("/jobs/{job_id}/events/stream")
async def job_event_stream(
    job_id: str, request: Request, coord: CoordinatorDep, visitor: VisitorDep
) -> Response:
    """The API's job event stream (server.api.routes_events) behind the session cookie: the job
    page's ``EventSource`` cannot send an API key, and resends ``Last-Event-ID`` by itself."""
    # The browser's own Last-Event-ID (a reconnect) wins over ``after``, the last event the page showed.
    raw = request.headers.get("last-event-id") or request.query_params.get("after", "")
    last_event_id = int(raw) if re.fullmatch(r"[0-9]{1,18}", raw) else None
    stream = await streams.job_stream(coord, job_id, visitor.scope, last_event_id)
    return sse.response(stream, coord.settings.events_ping_s)


@router.get("/jobs/{job_id}/outputs/{name}")
async def job_output(job_id: str, name: str, coord: CoordinatorDep, visitor: VisitorDep) -> Response:
    entry = await jobs.output_blob(coord, job_id, name, visitor.scope)
    return await blob_response(coord, entry)


@router.get("/agents")
async def agents(coord: CoordinatorDep, visitor: VisitorDep) -> Response:
    listed = await workers.list_workers(coord, namespace=visitor.scope)
    return views.page("agents.html", **_context(visitor, page="agents", agents=listed))


@router.get("/dead")
async def dead(request: Request, coord: CoordinatorDep, visitor: VisitorDep) -> Response:
    async with coord.db.read() as conn:
        groups = await queries.dead_groups(conn, visitor.scope)
    requeued = request.query_params.get("requeued", "")
    return views.page(
        "dead.html",
        **_context(
            visitor,
            page="dead",
            groups=groups,
            requeued=int(requeued) if re.fullmatch(r"[0-9]{1,7}", requeued) else None,
            more=request.query_params.get("more") == "1",
        ),
    )
