"""One reader of new job events per process, fanned out to every open event stream.

The hub wakes on the events notifier (``Coordinator.events``, LISTEN/NOTIFY across replicas on
PostgreSQL) and at least every ``wakeup_recheck_s``, reads the rows past its high-water mark
and offers each to the subscriptions that match it. Streams never hold a database connection
while they wait, and a consumer that does not keep up is dropped (told to resume) instead of
growing a buffer.

PostgreSQL hands out ids at insert time, not at commit time: an id below the high-water mark
may commit later. Ids missing below it are looked for again for ``events_gap_grace_s``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select

from taskpost.protocol import JobState, JobStreamEvent
from taskpost.server.db.models import Job, JobEvent
from taskpost.server.services.convert import require_datetime

if TYPE_CHECKING:
    from taskpost.server.coordinator import Coordinator

logger = logging.getLogger(__name__)

EVENTS = JobEvent.__table__  # type: ignore[attr-defined]
JOBS = Job.__table__  # type: ignore[attr-defined]
READ_LIMIT = 500
_GAP_RECHECK_S = 0.2
_ERROR_BACKOFF_S = 1.0
_MAX_GAP = 10_000
"""A wider gap is a rolled-back batch, not transactions in flight: not waited for."""


def event_select() -> Any:
    """Job events with their job's namespace and type."""
    return select(EVENTS, JOBS.c.namespace, JOBS.c.type).join(JOBS, JOBS.c.id == EVENTS.c.job_id)


def stream_event(row: Any) -> JobStreamEvent:
    """A ``job_events`` row (joined with its job's namespace and type) as the streams send it."""
    data = row.data if isinstance(row.data, dict) else {}
    state = data.get("state")
    return JobStreamEvent(
        id=row.id,
        job_id=row.job_id,
        kind=row.kind,
        at=require_datetime(row.at),
        attempt=row.attempt,
        worker_id=row.worker_id,
        detail=row.detail,
        state=JobState(state) if isinstance(state, str) else None,
        progress=data.get("progress"),
        message=data.get("message"),
        index=data.get("index"),
        partial=data.get("chunk"),
        namespace=getattr(row, "namespace", None),
        type=getattr(row, "type", None),
    )


class Subscription:
    """What one stream receives: matching events, up to ``limit`` not yet taken."""

    def __init__(self, match: Callable[[JobStreamEvent], bool], limit: int) -> None:
        self._match = match
        self._limit = limit
        self._items: deque[JobStreamEvent] = deque()
        self._ready = asyncio.Event()
        self.dropped = False
        """The consumer fell ``limit`` events behind: it must resume from the database."""
        self.closed = False

    def offer(self, event: JobStreamEvent) -> None:
        if self.dropped or self.closed or not self._match(event):
            return
        if len(self._items) >= self._limit:
            self.dropped = True
            self._items.clear()
        else:
            self._items.append(event)
        self._ready.set()

    def close(self) -> None:
        self.closed = True
        self._ready.set()

    async def take(self, timeout_s: float) -> list[JobStreamEvent]:
        """The events offered since the last call; waits up to ``timeout_s`` for one."""
        if not self._items and not self.dropped and not self.closed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._ready.wait(), timeout_s)
        self._ready.clear()
        items = list(self._items)
        self._items.clear()
        return items


class EventHub:
    """Reads new job events once for the whole process and offers them to each subscription."""

    def __init__(self, coord: Coordinator) -> None:
        self._coord = coord
        self._subscriptions: set[Subscription] = set()
        self._task: asyncio.Task[None] | None = None
        self._hwm = 0
        self._pending: dict[int, float] = {}
        """Ids missing below the high-water mark -> until when they are looked for."""
        self._started = asyncio.Event()
        self.closed = False

    @property
    def open_streams(self) -> int:
        return len(self._subscriptions)

    @property
    def low_water(self) -> int:
        """The highest id below which every id has been read or given up on."""
        return min(self._pending, default=self._hwm + 1) - 1

    async def start(self) -> None:
        """Begin reading from the events present now; returns once the starting point is read."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="taskpost-event-hub")
        await self._started.wait()

    def subscribe(self, match: Callable[[JobStreamEvent], bool]) -> Subscription:
        subscription = Subscription(match, self._coord.settings.events_buffer)
        if self.closed:
            subscription.close()
        else:
            self._subscriptions.add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        self._subscriptions.discard(subscription)

    async def aclose(self) -> None:
        """Close every subscription (their streams send ``resume`` and end) and stop reading."""
        self.closed = True
        for subscription in self._subscriptions:
            subscription.close()
        self._subscriptions.clear()
        self._started.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        coord = self._coord
        while not self.closed:
            try:
                if not self._started.is_set():
                    async with coord.db.read() as conn:
                        self._hwm = (await conn.execute(select(func.max(EVENTS.c.id)))).scalar() or 0
                    self._started.set()
                version = coord.events.version
                if await self._read_once() >= READ_LIMIT:
                    continue
                wait_s = _GAP_RECHECK_S if self._pending else coord.settings.wakeup_recheck_s
                await coord.events.wait(version, wait_s)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("event hub: reading job events failed", extra={"action": "event_hub"})
                await asyncio.sleep(_ERROR_BACKOFF_S)

    async def _read_once(self) -> int:
        coord = self._coord
        now = time.monotonic()  # not coord.clock: a test's manual clock would keep gaps open forever
        self._pending = {i: until for i, until in self._pending.items() if until > now}
        query = event_select().where(EVENTS.c.id > self._hwm).order_by(EVENTS.c.id).limit(READ_LIMIT)
        async with coord.db.read() as conn:
            new = (await conn.execute(query)).all()
            late: Sequence[Any] = ()
            if self._pending:
                missing = event_select().where(EVENTS.c.id.in_(list(self._pending))).order_by(EVENTS.c.id)
                late = (await conn.execute(missing)).all()
        for row in [*late, *new]:
            self._pending.pop(row.id, None)
            if row.id > self._hwm:
                if coord.db.dialect.name == "postgresql" and row.id - self._hwm <= _MAX_GAP:
                    until = now + coord.settings.events_gap_grace_s
                    self._pending.update(dict.fromkeys(range(self._hwm + 1, row.id), until))
                self._hwm = row.id
            event = stream_event(row)
            for subscription in list(self._subscriptions):
                subscription.offer(event)
        return len(new)
