"""Tables of the coordinator. Times are UNIX seconds (float) so every dialect compares them alike."""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, BigInteger, Column, Float, Index, Integer, String, Text, UniqueConstraint, text
from sqlmodel import Field, SQLModel

from taskpost.protocol import DEFAULT_NAMESPACE

FINISHED_ROWS = text("ended_at IS NOT NULL")
CACHED_ROWS = text("cache_key IS NOT NULL")
WEBHOOK_ROWS = text("webhook_state IN ('waiting', 'pending')")
TIMED_ROWS = text("total_timeout_s IS NOT NULL")
"""The rows of finished jobs: a job gets ``ended_at`` when it finishes."""

# 64-bit on PostgreSQL (ids that grow for good, sizes up to TASKPOST_MAX_UPLOAD_BYTES = 2 GiB);
# SQLite's INTEGER already is, and only INTEGER PRIMARY KEY numbers rows by itself.
BIG_INT = BigInteger().with_variant(Integer(), "sqlite")

# Every change here needs a revision in server/db/migrations/versions (tests/server/test_migrations.py
# fails until the migrated tables match these models). Columns added to an existing table carry a
# server default, so that a revision can add them with ALTER TABLE ... ADD COLUMN.


class Job(SQLModel, table=True):
    __tablename__ = "jobs"

    seq: int | None = Field(default=None, sa_column=Column(BIG_INT, primary_key=True))
    """Insertion order: FIFO inside a priority."""
    id: str = Field(unique=True, max_length=36)
    namespace: str = Field(
        default=DEFAULT_NAMESPACE,
        sa_column=Column(String(64), nullable=False, server_default=DEFAULT_NAMESPACE),
    )
    """The tenant: a client key sees only its namespace's jobs."""
    type: str = Field(max_length=100)
    state: str = Field(max_length=16)
    priority: int
    params: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    meta: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    result: Any = Field(default=None, sa_column=Column(JSON, nullable=True))
    error: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    progress: float | None = None
    progress_message: str | None = None
    attempts: int = 0
    max_attempts: int
    timeout_s: float | None = None
    total_timeout_s: float | None = None
    retry: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    worker_type: str | None = Field(default=None, max_length=8)
    labels: str = Field(default="[]", sa_column=Column(Text, nullable=False, default="[]"))
    """Canonical JSON array (sorted) so that the claim query can test it cheaply."""
    idempotency_key: str | None = Field(default=None, max_length=200)
    """Unique per namespace (see __table_args__)."""
    inputs: list[dict[str, Any]] = Field(sa_column=Column(JSON, nullable=False))
    outputs: list[dict[str, Any]] = Field(sa_column=Column(JSON, nullable=False))
    created_at: float
    started_at: float | None = None
    attempt_started_at: float | None = None
    ended_at: float | None = None
    available_at: float | None = None
    """When a FAILED job may run again."""
    lease_expires_at: float | None = None
    lease_token: str | None = Field(default=None, max_length=64)
    last_lease_token: str | None = Field(default=None, max_length=64)
    """The token of the last attempt its agent reported failed: a resend of that report is
    acknowledged again instead of being taken for a stale lease."""
    worker_id: str | None = Field(default=None, max_length=36)
    cancel_requested: bool = False
    cache_key: str | None = Field(default=None, max_length=64)
    """Of a job submitted with ``cache``: SHA-256 of its type, handler version, params and input
    digests; a later equal submit in the namespace takes a completed job's result."""
    cached_from: str | None = Field(default=None, max_length=36)
    """The completed job whose result and outputs this one took."""
    webhook_url: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    webhook_state: str | None = Field(default=None, max_length=16)
    """None: no webhook; ``waiting`` until the job ends, ``pending`` while deliveries are due,
    then ``delivered`` or ``failed``."""
    webhook_attempts: int = Field(default=0, sa_column=Column(Integer, nullable=False, server_default="0"))
    webhook_next_at: float | None = None
    declined_by: list[dict[str, Any]] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    """Agents that gave back a job whose relative ``local_path`` was not under their files roots."""
    parent_id: str | None = Field(default=None, max_length=36)
    """The job whose completion created this one; no foreign key, so purging a parent keeps it."""
    chain_index: int | None = None
    """Which step of the parent's ``then`` this job is."""
    then_steps: list[dict[str, Any]] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    """The ``then`` steps to create when this job completes."""
    children: list[str] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    """The ids of the jobs this one's completion created; None before it has any."""

    __table_args__ = (
        # Matches the claim query's WHERE state = ? ORDER BY priority DESC, seq exactly; the
        # namespace of a restricted worker key is a filter on the rows this index yields.
        Index("ix_jobs_claim", "state", Column("priority").desc(), "seq"),
        Index("ix_jobs_namespace_seq", "namespace", "seq"),
        UniqueConstraint("namespace", "idempotency_key", name="uq_jobs_namespace_idempotency_key"),
        # A parent spawns each step once: a second spawn fails here instead of duplicating. Root
        # jobs have NULLs, which are distinct on both databases. Also the walk to a job's children.
        Index("uq_jobs_parent_step", "parent_id", "chain_index", unique=True),
        Index("ix_jobs_state_available", "state", "available_at"),
        Index("ix_jobs_state_lease", "state", "lease_expires_at"),
        Index("ix_jobs_type_state", "type", "state"),
        # Covers the counts per namespace, type, priority and state (stats, /metrics, the
        # dashboard): the GROUP BY reads this index alone, never the rows.
        Index("ix_jobs_counts", "namespace", "type", "priority", "state"),
        # Retention (server.services.retention) walks finished jobs of one state, oldest first.
        # Partial: only finished rows have ended_at, so claims and heartbeats never touch it.
        Index(
            "ix_jobs_state_ended",
            "state",
            "ended_at",
            sqlite_where=FINISHED_ROWS,
            postgresql_where=FINISHED_ROWS,
        ),
        # Only jobs submitted with ``cache`` have a key; a lookup adds state = 'completed'.
        Index(
            "ix_jobs_cache_key",
            "namespace",
            "cache_key",
            sqlite_where=CACHED_ROWS,
            postgresql_where=CACHED_ROWS,
        ),
        # Only jobs with a total timeout: the reaper's search for those past it (with statistics,
        # SQLite otherwise scanned the whole table for it).
        Index(
            "ix_jobs_total_timeout",
            "state",
            "created_at",
            sqlite_where=TIMED_ROWS,
            postgresql_where=TIMED_ROWS,
        ),
        # Only jobs with a webhook not yet delivered: the dispatcher's work list.
        Index(
            "ix_jobs_webhook_state",
            "webhook_state",
            "webhook_next_at",
            sqlite_where=WEBHOOK_ROWS,
            postgresql_where=WEBHOOK_ROWS,
        ),
    )


class JobEvent(SQLModel, table=True):
    """What happened to a job: failures, expiries, stale completions, and (kinds ``state``,
    ``progress``, ``partial``) each state change and progress report, for the event streams."""

    __tablename__ = "job_events"
    # Ids are the streams' resume points (Last-Event-ID): SQLite must never hand out an id again
    # after the newest rows were purged. ix_job_events_kind_at serves per-minute failure counts.
    __table_args__ = (Index("ix_job_events_kind_at", "kind", "at"), {"sqlite_autoincrement": True})

    id: int | None = Field(default=None, sa_column=Column(BIG_INT, primary_key=True))
    job_id: str = Field(index=True, max_length=36)
    at: float
    kind: str = Field(max_length=40)
    attempt: int | None = None
    worker_id: str | None = Field(default=None, max_length=36)
    detail: str | None = None
    data: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    """What the kind carries: the new state, the progress value and message, a partial chunk."""


class DashboardSession(SQLModel, table=True):
    """A signed-in dashboard visitor. The cookie holds a random token; only its SHA-256 is here."""

    __tablename__ = "dashboard_sessions"

    id: str = Field(primary_key=True, max_length=64)
    key_id: str = Field(index=True, max_length=36)
    """The API key signed in with: re-read on every request, so revoking it signs out."""
    csrf: str = Field(max_length=64)
    created_at: float
    expires_at: float = Field(index=True)
    last_seen_at: float


class ApiKey(SQLModel, table=True):
    __tablename__ = "api_keys"

    id: str = Field(primary_key=True, max_length=36)
    prefix: str = Field(max_length=16)
    """Public: the first characters of a generated key, or ``cfg_`` and part of the id for a
    configured one (whose characters are never stored)."""
    hash: str = Field(unique=True, max_length=64)
    hash_scheme: str = Field(
        default="sha256", sa_column=Column(String(16), nullable=False, server_default="sha256")
    )
    """``sha256`` for generated keys, ``scrypt`` (salted) for configured ones."""
    salt: str | None = Field(default=None, max_length=64)
    role: str = Field(max_length=16)
    name: str | None = None
    namespaces: str = Field(default="[]", sa_column=Column(Text, nullable=False, server_default="[]"))
    """Canonical JSON array (sorted). client: its one namespace; worker: the ones it serves
    (empty: all); admin: empty."""
    created_at: float
    last_used_at: float | None = None
    revoked_at: float | None = None
    expires_at: float | None = None
    task_types: str = Field(default="[]", sa_column=Column(Text, nullable=False, server_default="[]"))
    """Canonical JSON array (sorted): the job types a worker key may register and claim (empty: all)."""
    previous_hash: str | None = Field(default=None, max_length=64, index=True)
    """The SHA-256 of the secret before the last rotation, valid until ``previous_expires_at``."""
    previous_prefix: str | None = Field(default=None, max_length=16)
    previous_expires_at: float | None = None
    rotated_at: float | None = None


class Worker(SQLModel, table=True):
    __tablename__ = "workers"

    id: str = Field(primary_key=True, max_length=36)
    name: str | None = None
    worker_type: str = Field(max_length=8)
    task_types: list[str] = Field(sa_column=Column(JSON, nullable=False))
    labels: list[str] = Field(sa_column=Column(JSON, nullable=False))
    max_concurrent: int
    version: str | None = None
    host: str | None = None
    registered_at: float
    last_seen_at: float
    draining: bool = False
    deregistered_at: float | None = None
    key_id: str | None = Field(default=None, max_length=36)
    """The API key the agent registered with; only that key (or an admin's) may act for it."""


class KnownJobType(SQLModel, table=True):
    """Job types some agent declared, so that a submit of a mistyped type is refused."""

    __tablename__ = "job_types"

    name: str = Field(primary_key=True, max_length=100)
    first_seen_at: float
    last_seen_at: float | None = None
    """When an agent declaring it last registered or checked in; None (older rows): first_seen_at."""


class JobTypeSchema(SQLModel, table=True):
    """The parameters a handler version declared for its job type (``taskpost.protocol.types``)."""

    __tablename__ = "job_type_schemas"

    type: str = Field(primary_key=True, max_length=100)
    version: str = Field(primary_key=True, max_length=100)
    params_schema: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    registered_at: float
    """When an agent last declared it: the newest one is the schema submits are checked against."""


class NamespaceSecret(SQLModel, table=True):
    """The key that signs a namespace's webhook deliveries (HMAC-SHA256)."""

    __tablename__ = "namespace_secrets"

    namespace: str = Field(primary_key=True, max_length=64)
    secret: str = Field(max_length=128)
    created_at: float


class Upload(SQLModel, table=True):
    """A blob uploaded ahead of the jobs that will use it as an input."""

    __tablename__ = "uploads"
    __table_args__ = (Index("ix_uploads_last_used_at", "last_used_at"),)

    id: str = Field(primary_key=True, max_length=36)
    namespace: str = Field(
        default=DEFAULT_NAMESPACE,
        sa_column=Column(String(64), nullable=False, server_default=DEFAULT_NAMESPACE),
    )
    """Only jobs of this namespace may name it as an input."""
    name: str
    blob_key: str
    size: int = Field(sa_column=Column(BIG_INT, nullable=False))
    sha256: str = Field(max_length=64)
    created_at: float
    last_used_at: float = Field(default=0.0, sa_column=Column(Float, nullable=False, server_default="0"))
    """When it was uploaded or last named by a new job; TASKPOST_UPLOAD_GRACE_S after that it is
    forgotten (the upgrade step sets created_at on rows of older versions)."""


class Blob(SQLModel, table=True):
    """One blob in the store and how many things reference it (server.services.blob_refs).

    A reservation (``stored_at`` NULL, no references) is a blob being written. A stored blob
    with no reference left is garbage: the collector deletes it from the store, then this row.
    """

    __tablename__ = "blobs"

    key: str = Field(primary_key=True, max_length=64)
    refs: int = Field(default=0, index=True)
    """Uploads, pending outputs, and job inputs and outputs that name this blob."""
    created_at: float
    stored_at: float | None = None
    """When its bytes were recorded as used; NULL while it is being written."""


class AttemptOutput(SQLModel, table=True):
    """An output uploaded during an attempt: it becomes the job's when that attempt succeeds."""

    __tablename__ = "attempt_outputs"
    __table_args__ = (UniqueConstraint("job_id", "lease_token", "name", name="uq_attempt_outputs_name"),)

    id: int | None = Field(default=None, sa_column=Column(BIG_INT, primary_key=True))
    """Upload order, which is the order of the job's outputs."""
    job_id: str = Field(max_length=36)
    lease_token: str = Field(max_length=64)
    """The attempt: the lease it was uploaded under."""
    name: str
    blob_key: str = Field(max_length=64)
    size: int = Field(sa_column=Column(BIG_INT, nullable=False))
    sha256: str = Field(max_length=64)
    created_at: float


class CoordinatorReplica(SQLModel, table=True):
    """A coordinator process that ran on this database, and when it last said it was alive.

    Each process adds its row on start and its reaper loop moves ``last_seen_at`` on every pass,
    so a process that starts can tell how long no coordinator was running (server.services.replicas).
    """

    __tablename__ = "coordinator_replicas"

    id: str = Field(primary_key=True, max_length=36)
    host: str | None = Field(default=None, max_length=255)
    pid: int | None = None
    started_at: float
    last_seen_at: float = Field(index=True)
    succeeded_by: str | None = Field(default=None, max_length=36)
    """Set on the replica that was the last one alive by the replica that started after a time
    with none alive and gave running leases that time back: so only one starting replica does."""
