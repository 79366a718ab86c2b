"""The coordinator's state, handed to every service function."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from taskpost.server.blobs import BlobStore, blob_store_from_settings
from taskpost.server.db.database import Database
from taskpost.server.metrics import Metrics
from taskpost.server.notifier import LocalNotifier, Notifier, notifier_for
from taskpost.server.services.auth_limits import AuthFailureLimiter
from taskpost.server.settings import Settings

if TYPE_CHECKING:
    from taskpost.server.event_hub import EventHub

# Built-in job types and the extra an agent needs to advertise each.
BUILTIN_JOB_TYPES = {
    "noop": None,
    "transcription": "stt",
    "ocr": "ocr",
    "url_audio": "download",
    "document": "docs",
}


@dataclass(frozen=True)
class WorkerFacts:
    """What an agent declared when it registered, which never changes: safe to keep per process."""

    worker_id: str
    key_id: str | None
    worker_type: str
    task_types: tuple[str, ...]
    labels: tuple[str, ...]


@dataclass
class WorkerRoute:
    """An agent on one request: its facts, and whether it drains or is gone.

    Made afresh for each request (server.services.workers.route_for). Whether it drains or is
    gone can change at any time on any replica, so it is read in the transaction of the
    operation that needs it (the claim, the heartbeat), never kept between requests."""

    worker_id: str
    key_id: str | None
    worker_type: str
    task_types: tuple[str, ...]
    labels: tuple[str, ...]
    draining: bool = False
    gone: bool = False
    """Deregistered: the agent must register again."""
    last_seen_at: float = 0.0
    reread: bool = True
    """``draining``, ``gone`` and ``last_seen_at`` are not read yet (or are old: a held claim woke
    up): the next claim reads them in its transaction."""

    @classmethod
    def of(cls, facts: WorkerFacts) -> WorkerRoute:
        return cls(facts.worker_id, facts.key_id, facts.worker_type, facts.task_types, facts.labels)


@dataclass
class ParamSchema:
    """The schema submits of a job type are checked against: the newest one an agent declared."""

    version: str | None
    params_schema: dict[str, Any] | None
    """None: no agent serving the type declared one; its submits are not checked."""
    read_at: float
    """When this process last read it from (or wrote it to) the job_type_schemas table."""
    validator: Any = None
    """The compiled validator, made on first use (server.services.param_checks)."""


@dataclass
class Coordinator:
    settings: Settings
    db: Database
    blobs: BlobStore
    notifier: Notifier
    """Moves when work may have become claimable: wakes held claims."""
    job_changes: Notifier
    """Moves when jobs changed state: wakes held job reads (``GET /jobs/{id}?wait_s=``)."""
    events: Notifier = field(default_factory=LocalNotifier)
    """Moves when job events were written (state changes, progress, partial output): wakes the
    event hub (server.event_hub), which feeds the event streams."""
    clock: Callable[[], float] = time.time
    metrics: Metrics = field(default_factory=Metrics)
    """This process's Prometheus metrics (server.metrics), served at ``/metrics``."""
    due_timer: LocalNotifier = field(default_factory=LocalNotifier)
    """Moves when a job was scheduled: the due-time timer (server.services.schedule) looks
    again at the earliest due time. Local: each replica times what it scheduled and what it reads."""
    replica_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    """This process's row in coordinator_replicas (server.services.replicas)."""
    worker_facts: dict[str, WorkerFacts] = field(default_factory=dict)
    """Registered agents' facts, by id, as this process met them (oldest dropped past a bound)."""
    job_types_seen: dict[str, float] = field(default_factory=dict)
    """When an agent last declared each job type, as last read from or written to the job_types
    table: a type found fresh here is known without a read (the table's times only grow)."""
    param_schemas: dict[str, ParamSchema] = field(default_factory=dict)
    """The current parameter schema of each job type, as this process last read or wrote it
    (server.services.job_types); re-read after a few seconds, so that one declared through
    another replica is used soon."""
    event_hub: EventHub | None = None
    """Fans new job events out to this process's streams; made by the app's lifespan."""
    verified_keys: dict[str, str] = field(default_factory=dict)
    """SHA-256 of a raw configured key -> the id of the key whose scrypt hash it matched.

    An immutable fact, kept so that the slow hash runs once per process; whether that key is
    still valid (revoked or not) is read from the database on every request."""
    auth_limiter: AuthFailureLimiter = field(init=False)
    """Failed authentications per client address, for the API, /metrics and the dashboard alike."""

    def __post_init__(self) -> None:
        self.auth_limiter = AuthFailureLimiter(
            self.settings.auth_failure_rate_per_s, self.settings.auth_failure_burst
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> Coordinator:
        db = Database.from_settings(settings)
        return cls(
            settings=settings,
            db=db,
            blobs=blob_store_from_settings(settings),
            notifier=notifier_for(db, settings),
            job_changes=notifier_for(db, settings, job_changes=True),
            events=notifier_for(db, settings, events=True),
        )
