"""Webhook deliveries: a job submitted with ``webhook_url`` is POSTed a signed summary when it ends.

The state lives in the job's row, so that every replica may deliver and a restart loses
nothing. ``webhook_state`` is ``waiting`` until the job ends, then ``pending``; a replica takes
a due delivery by moving its ``webhook_next_at`` past the delivery's timeout in one conditional
UPDATE (a lease: a replica that dies mid-delivery lets it fall due again), and records the
outcome only if that lease is still its own. 2xx marks it ``delivered``; anything else is tried
again with backoff, up to ``TASKPOST_WEBHOOK_MAX_ATTEMPTS``, then ``failed``. Each try is a job
event (``webhook_delivered``/``webhook_failed``). Deliveries run in their own tasks, so the
completion of a job never waits for one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from dataclasses import dataclass
from typing import Any

import httpcore
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from taskpost.protocol import TERMINAL_STATES
from taskpost.server import outbound
from taskpost.server.coordinator import Coordinator
from taskpost.server.db.models import WEBHOOK_ROWS
from taskpost.server.errors import DatabaseUnavailable, InvalidParams
from taskpost.server.services import events, webhook_payload, webhook_secrets
from taskpost.server.services.backoff import retry_delay_s
from taskpost.server.services.job_rows import decoded, job_select
from taskpost.server.services.jobs import JOBS
from taskpost.server.version import VERSION

logger = logging.getLogger(__name__)

WAITING, PENDING, DELIVERED, FAILED = "waiting", "pending", "delivered", "failed"
MAX_IN_FLIGHT = 32
IDLE_RECHECK_S = 5.0
"""Longest sleep between passes: another replica may have scheduled a retry we were not told of."""
FULL_SCAN_S = 60.0
"""How often every ended job is looked at, not only those that ended lately."""
PASS_GAP_S = 0.25
"""Least time between passes woken by job changes. Every claim and completion moves
``job_changes``: without a gap a busy queue would keep this loop reading back to back."""
RECENT_SLACK_S = 30.0
"""How far before the last pass a job's end may be dated (other replicas' clocks, late commits)."""
_ENDED = sorted(state.value for state in TERMINAL_STATES)


@dataclass(frozen=True)
class Outcome:
    delivered: bool
    detail: str


def _pending() -> Any:
    return (JOBS.c.webhook_state == PENDING) & WEBHOOK_ROWS


def _ended_waiting(since: float | None) -> list[Any]:
    """Conditions of jobs with a webhook still waiting that have ended (since ``since``, or ever)."""
    ended = [JOBS.c.webhook_state == WAITING, JOBS.c.state.in_(_ENDED)]
    if since is None:
        return [*ended, WEBHOOK_ROWS]  # all of them: the partial index of webhook rows
    # Lately ended: the index of finished jobs by end time finds the few (so, not WEBHOOK_ROWS here).
    return [*ended, JOBS.c.ended_at >= since]


async def _promote(conn: AsyncConnection, now: float, since: float | None) -> None:
    """Jobs with a webhook that ended (lately, or ever when ``since`` is None) fall due now."""
    promote = update(JOBS).where(*_ended_waiting(since))
    await conn.execute(promote.values(webhook_state=PENDING, webhook_next_at=now, webhook_attempts=0))


async def _claim(conn: AsyncConnection, now: float, lease_until: float, limit: int) -> list[Any]:
    """Take up to ``limit`` due deliveries until ``lease_until``; their job rows."""
    due = select(JOBS.c.id).where(_pending(), JOBS.c.webhook_next_at <= now)
    due = due.order_by(JOBS.c.webhook_next_at).limit(limit)
    # The conditions again on the UPDATE: on PostgreSQL a row another replica took meanwhile is
    # re-checked after its commit, and is then no longer due.
    taken = await conn.execute(
        update(JOBS)
        .where(JOBS.c.id.in_(due), _pending(), JOBS.c.webhook_next_at <= now)
        .values(webhook_next_at=lease_until)
        .returning(JOBS.c.id)
    )
    ids = list(taken.scalars())
    if not ids:
        return []
    return [decoded(row) for row in await conn.execute(job_select().where(JOBS.c.id.in_(ids)))]


class WebhookDispatcher:
    """The coordinator's delivery loop: started and stopped with the app."""

    def __init__(self, coord: Coordinator, resolver: outbound.Resolver | None = None) -> None:
        self._coord = coord
        self._resolver = resolver
        self._ssl: ssl.SSLContext | None = None
        """Made at the first delivery (loading the CA bundle takes a moment)."""
        self._task: asyncio.Task[None] | None = None
        self._in_flight: set[asyncio.Task[None]] = set()
        self._kick = asyncio.Event()
        self._full_scan_due = 0.0
        self._scanned_at: float | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="taskpost-webhooks")

    async def aclose(self) -> None:
        """Stop; a delivery cut short keeps its lease, and falls due again when that runs out."""
        tasks = [t for t in (self._task, *self._in_flight) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        while True:
            seen = self._coord.job_changes.version
            self._kick.clear()
            started = time.monotonic()
            try:
                wait_s = await self.pass_once()
            except asyncio.CancelledError:
                raise
            except DatabaseUnavailable as error:
                logger.warning("webhook pass skipped: %s", error, extra={"action": "webhooks"})
                wait_s = IDLE_RECHECK_S
            except Exception:
                logger.exception("webhook pass failed", extra={"action": "webhooks"})
                wait_s = IDLE_RECHECK_S
            await self._wait(seen, wait_s)
            rest = PASS_GAP_S - (time.monotonic() - started)
            if wait_s > 0 and rest > 0:
                await asyncio.sleep(rest)

    async def pass_once(self) -> float:
        """Start the deliveries that are due; how long until another pass is worth making."""
        coord = self._coord
        now = coord.clock()
        full = time.monotonic() >= self._full_scan_due
        since = None if full or self._scanned_at is None else self._scanned_at - RECENT_SLACK_S
        free = MAX_IN_FLIGHT - len(self._in_flight)
        async with coord.db.read() as conn:
            ended = (await conn.execute(select(JOBS.c.id).where(*_ended_waiting(since)).limit(1))).first()
            soonest = select(func.min(JOBS.c.webhook_next_at)).where(_pending())
            next_at: float | None = (await conn.execute(soonest)).scalar()
        self._scanned_at = now
        if full:
            self._full_scan_due = time.monotonic() + FULL_SCAN_S
        due = next_at is not None and next_at <= now and free > 0
        if ended is None and not due:
            if next_at is None or free <= 0:
                return IDLE_RECHECK_S  # a delivery that ends kicks the loop
            return min(next_at - now, IDLE_RECHECK_S)
        # A send is bounded by webhook_timeout_s; around it are two short transactions.
        lease_until = now + 2 * coord.settings.webhook_timeout_s + 1
        async with coord.db.write() as conn:
            await _promote(conn, now, since)
            jobs = await _claim(conn, now, lease_until, free) if free > 0 else []
        for job in jobs:
            task = asyncio.create_task(self._deliver(job, lease_until), name=f"taskpost-webhook-{job.id}")
            self._in_flight.add(task)
            task.add_done_callback(self._in_flight.discard)
        return 0.0 if jobs or ended is not None else IDLE_RECHECK_S

    async def _wait(self, seen: int, timeout_s: float) -> None:
        """Until a job changes, a delivery ends, or ``timeout_s`` passes."""
        if timeout_s <= 0:
            return
        waiters: list[asyncio.Task[Any]] = [
            asyncio.create_task(self._kick.wait(), name="taskpost-webhooks-kick")
        ]
        if not self._coord.job_changes.closed:
            changes = self._coord.job_changes.wait(seen, timeout_s)
            waiters.append(asyncio.create_task(changes, name="taskpost-webhooks-changes"))
        try:
            await asyncio.wait(waiters, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
            await asyncio.gather(*waiters, return_exceptions=True)

    async def _deliver(self, job: Any, lease_until: float) -> None:
        attempt = job.webhook_attempts + 1
        try:
            outcome = await self._send(job)
            await self._record(job, lease_until, attempt, outcome)
        except DatabaseUnavailable as error:
            # The lease runs out and another pass tries again.
            logger.warning("webhook of job %s not recorded: %s", job.id, error, extra={"job_id": job.id})
        except Exception:
            logger.exception(
                "webhook of job %s failed", job.id, extra={"job_id": job.id, "action": "webhooks"}
            )
        finally:
            self._kick.set()

    async def _send(self, job: Any) -> Outcome:
        settings = self._coord.settings
        secret = await webhook_secrets.secret_for(self._coord, job.namespace)
        body = webhook_payload.encode(webhook_payload.build(job))
        headers = {
            "Content-Type": "application/json",
            "User-Agent": f"taskpost-webhooks/{VERSION}",
            "X-Taskpost-Event": webhook_payload.event_name(job.state),
            "X-Taskpost-Delivery": webhook_payload.delivery_id(job.id, job.ended_at),
            "X-Taskpost-Signature": webhook_secrets.signature_header(
                secret.secret, body, int(self._coord.clock())
            ),
        }
        timeout_s = settings.webhook_timeout_s
        try:
            async with asyncio.timeout(timeout_s):
                target = await outbound.check_url(
                    job.webhook_url,
                    field="webhook_url",
                    allow_private=settings.allow_private_webhooks,
                    resolver=self._resolver,
                )
                self._ssl = self._ssl or httpcore.default_ssl_context()
                status = await outbound.post(
                    target, body, headers, timeout_s=timeout_s, ssl_context=self._ssl
                )
        except InvalidParams as error:
            return Outcome(False, f"refused: {error.message}")
        except TimeoutError:
            return Outcome(False, f"no answer within {timeout_s:g} s")
        except Exception as error:  # connection, TLS and protocol errors of the receiver's side
            return Outcome(False, f"{type(error).__name__}: {error}")
        return Outcome(200 <= status < 300, f"HTTP {status}")

    async def _record(self, job: Any, lease_until: float, attempt: int, outcome: Outcome) -> None:
        coord = self._coord
        settings = coord.settings
        now = coord.clock()
        tries = f"delivery {attempt} of {settings.webhook_max_attempts}"
        if outcome.delivered:
            values: dict[str, Any] = {"webhook_state": DELIVERED, "webhook_next_at": None}
            kind, detail = "webhook_delivered", f"{outcome.detail} ({tries})"
        elif attempt >= settings.webhook_max_attempts:
            values = {"webhook_state": FAILED, "webhook_next_at": None}
            kind, detail = "webhook_failed", f"{outcome.detail} ({tries}); giving up"
        else:
            policy = {"base_s": settings.webhook_retry_base_s, "cap_s": settings.webhook_retry_cap_s}
            delay = retry_delay_s(policy, attempt)
            values = {"webhook_state": PENDING, "webhook_next_at": now + delay}
            kind, detail = "webhook_failed", f"{outcome.detail} ({tries}); next in {delay:.1f} s"
        async with coord.db.write() as conn:
            result = await conn.execute(
                update(JOBS)
                .where(JOBS.c.id == job.id, _pending(), JOBS.c.webhook_next_at == lease_until)
                .values(webhook_attempts=attempt, **values)
            )
            if result.rowcount:
                await events.record(conn, [events.Event(job.id, kind, detail=detail)], now)
        level = logging.INFO if outcome.delivered else logging.WARNING
        logger.log(level, "webhook of job %s: %s", job.id, detail, extra={"job_id": job.id, "action": kind})
