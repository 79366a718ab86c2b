"""The event streams: one job's events until it ends, and a namespace-wide feed.

Each stream first reads what it missed from the database (events past ``Last-Event-ID``), then
takes live events from the process's ``EventHub``. It subscribes before it reads, and skips ids
it already sent, so nothing falls between the two. Both calls check what they can before the
response starts (404, 503) and return the iterator that ``server.api.sse.response`` sends.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from taskpost.protocol import RESUME_KIND, TERMINAL_STATES, JobState, JobStreamEvent
from taskpost.server.coordinator import Coordinator
from taskpost.server.errors import TaskpostError
from taskpost.server.event_hub import (
    EVENTS,
    JOBS,
    READ_LIMIT,
    EventHub,
    event_select,
    stream_event,
)
from taskpost.server.services import jobs

_TAKE_TIMEOUT_S = 30.0


class TooManyStreams(TaskpostError):
    """This coordinator has as many event streams open as it allows: try again later."""

    status_code = 503
    code = "overloaded"
    retry_after_s = 2


async def hub_of(coord: Coordinator) -> EventHub:
    """The process's hub, started on first use (the app's lifespan closes it)."""
    if coord.event_hub is None or (coord.event_hub.closed and not coord.events.closed):
        coord.event_hub = EventHub(coord)
    hub = coord.event_hub
    await hub.start()
    return hub


async def _open(coord: Coordinator) -> EventHub:
    hub = await hub_of(coord)
    if hub.open_streams >= coord.settings.events_max_streams:
        raise TooManyStreams(max_streams=coord.settings.events_max_streams)
    return hub


def _resume(last_id: int, job_id: str = "") -> JobStreamEvent:
    return JobStreamEvent(id=last_id, job_id=job_id, kind=RESUME_KIND, at=datetime.now(UTC))


def _ends(event: JobStreamEvent) -> bool:
    return event.kind == "state" and event.state in TERMINAL_STATES


async def job_stream(
    coord: Coordinator, job_id: str, scope: str | None, last_event_id: int | None
) -> AsyncIterator[JobStreamEvent]:
    """The job's events past ``last_event_id`` (all of them when None), then live ones, ending
    after its terminal state event. Raises JobNotFound (outside ``scope``) or TooManyStreams."""
    await jobs.get(coord, job_id, scope)
    hub = await _open(coord)
    return _job_events(coord, hub, job_id, last_event_id or 0)


async def _job_events(
    coord: Coordinator, hub: EventHub, job_id: str, last: int
) -> AsyncIterator[JobStreamEvent]:
    # Subscribed when the response starts (a stream never sent never unsubscribes), and before
    # the database is read: what commits in between comes through both and is sent once.
    subscription = hub.subscribe(lambda event: event.job_id == job_id)
    try:
        while True:
            async with coord.db.read() as conn:
                # The state first: a terminal one's state event committed with it, so it is read below.
                state = (await conn.execute(select(JOBS.c.state).where(JOBS.c.id == job_id))).scalar()
                query = event_select().where(EVENTS.c.job_id == job_id, EVENTS.c.id > last)
                rows = (await conn.execute(query.order_by(EVENTS.c.id).limit(READ_LIMIT))).all()
            for row in rows:
                event = stream_event(row)
                last = event.id
                yield event
            if len(rows) < READ_LIMIT:
                break
        if state is None or JobState(state) in TERMINAL_STATES:
            return
        while True:
            batch = await subscription.take(_TAKE_TIMEOUT_S)
            for event in batch:
                if event.id <= last:
                    continue
                last = event.id
                yield event
                if _ends(event):
                    return
            if subscription.dropped or subscription.closed:
                yield _resume(last, job_id)
                return
    finally:
        hub.unsubscribe(subscription)


async def feed(
    coord: Coordinator,
    scope: str | None,
    job_type: str | None,
    state: JobState | None,
    last_event_id: int | None,
) -> AsyncIterator[JobStreamEvent]:
    """Events of ``scope``'s jobs (every namespace when None), of ``job_type``, and with ``state``
    only the state events into it: those past ``last_event_id`` when given, then live ones.

    Ids mostly grow, but on PostgreSQL one may come after a higher one: clients dedupe by id."""

    def match(event: JobStreamEvent) -> bool:
        return (
            (scope is None or event.namespace == scope)
            and (job_type is None or event.type == job_type)
            and (state is None or (event.kind == "state" and event.state == state))
        )

    hub = await _open(coord)
    narrowed = event_select()
    if scope is not None:
        narrowed = narrowed.where(JOBS.c.namespace == scope)
    if job_type is not None:
        narrowed = narrowed.where(JOBS.c.type == job_type)
    if state is not None:
        narrowed = narrowed.where(EVENTS.c.kind == "state")
    return _feed_events(coord, hub, narrowed, match, last_event_id)


async def _feed_events(
    coord: Coordinator,
    hub: EventHub,
    narrowed: Any,
    match: Callable[[JobStreamEvent], bool],
    last_event_id: int | None,
) -> AsyncIterator[JobStreamEvent]:
    subscription = hub.subscribe(match)
    sent: set[int] = set()
    """Ids sent from the database that the hub may offer again, until it has read past them."""
    # Without a start point the feed starts live: a resume must not replay the whole log.
    last = last_event_id if last_event_id is not None else hub.low_water
    try:
        while last_event_id is not None:
            async with coord.db.read() as conn:
                query = narrowed.where(EVENTS.c.id > last).order_by(EVENTS.c.id).limit(READ_LIMIT)
                rows = (await conn.execute(query)).all()
            for row in rows:
                last = row.id
                event = stream_event(row)
                if match(event):
                    sent.add(event.id)
                    yield event
            if len(rows) < READ_LIMIT:
                break
        while True:
            batch = await subscription.take(_TAKE_TIMEOUT_S)
            for event in batch:
                if event.id in sent:
                    continue
                last = max(last, event.id)
                yield event
            if sent and hub.low_water >= max(sent):
                sent.clear()
            if subscription.dropped or subscription.closed:
                yield _resume(min(last, hub.low_water))
                return
    finally:
        hub.unsubscribe(subscription)
