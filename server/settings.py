"""Coordinator settings: every field reads ``TASKPOST_<NAME>`` from the environment or ``.env``."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Self
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from taskpost.protocol.logs import LOG_LEVELS, LogFormat

MIN_ADMIN_KEY_LENGTH = 32


class Settings(BaseSettings):
    """Configuration of one coordinator process, passed explicitly to ``create_app``."""

    model_config = SettingsConfigDict(env_prefix="TASKPOST_", env_file=".env", extra="ignore")

    data_dir: Path = Path("data")
    database_url: str | None = None
    """``sqlite:///path`` or ``postgresql://user:password@host/db``; defaults to a SQLite file in
    data_dir (server/db/dialects picks the dialect and its async driver from the scheme)."""
    auto_migrate: bool = True
    """Upgrade the tables to this version's revision on start (server/db/migrate.py); when off, a
    database not at that revision is refused: run ``taskpost db upgrade`` first."""
    db_pool_size: int = Field(default=10, ge=1)
    """Database connections each coordinator process keeps open."""
    db_max_overflow: int = Field(default=10, ge=0)
    """Connections opened past db_pool_size under load, closed again when returned."""
    db_pool_timeout_s: float = Field(default=10.0, gt=0)
    """How long a request waits for a free connection before it is answered 503."""
    db_connect_timeout_s: float = Field(default=5.0, gt=0)
    """How long opening a PostgreSQL connection may take before the request is answered 503."""
    db_statement_timeout_s: float = Field(default=30.0, ge=0)
    """PostgreSQL cancels a statement running longer than this (its statement_timeout); 0: no limit."""
    blob_dir: Path | None = None
    """Where inputs and outputs are kept; defaults to data_dir/blobs."""
    admin_key: SecretStr | None = None
    """Bootstrap admin key (at least 32 characters); when unset, one is generated and printed
    on first start. Stored with a salted slow hash (scrypt)."""

    lease_s: float = Field(default=30.0, gt=0)
    heartbeat_interval_s: float = Field(default=10.0, gt=0)
    long_poll_s: float = Field(default=20.0, ge=0, le=60)
    wakeup_recheck_s: float = Field(default=1.0, gt=0)
    """PostgreSQL: a held claim checks for work at least this often, even with no wake-up (a
    NOTIFY from another replica is lost through a transaction-mode pooler or a reconnect)."""
    progress_interval_s: float = Field(default=1.0, gt=0)
    """How soon agents report a changed progress, message or partial output (sooner than heartbeats)."""
    events_buffer: int = Field(default=256, ge=1)
    """Events queued per stream consumer; one that falls this far behind is told to resume."""
    events_max_streams: int = Field(default=500, ge=1)
    """Event streams open at once in this process; more are answered 503 overloaded."""
    events_gap_grace_s: float = Field(default=5.0, ge=0)
    """PostgreSQL: how long the namespace feed waits for an event id that another transaction
    holds (ids are handed out at insert, not at commit) before it goes past it."""
    events_ping_s: float = Field(default=15.0, gt=0)
    """An idle event stream sends a comment this often, so that proxies keep it open."""
    reaper_interval_s: float = Field(default=1.0, gt=0)
    timeout_grace_s: float = Field(default=10.0, ge=0)
    """How long past an attempt's timeout the coordinator waits for the agent before failing it."""
    worker_gone_s: float = Field(default=60.0, gt=0)
    """An agent silent for this long is shown as not alive."""

    default_max_attempts: int = Field(default=3, ge=1)
    default_timeout_s: float | None = Field(default=3600.0, gt=0)
    retry_base_s: float = Field(default=1.0, ge=0)
    retry_factor: float = Field(default=2.0, ge=1)
    retry_cap_s: float = Field(default=300.0, ge=0)

    # Webhooks (server/services/webhooks.py): a job's webhook_url is POSTed when the job ends.
    allow_private_webhooks: bool = False
    """Let webhook URLs point at loopback, private, link-local and other non-public addresses."""
    webhook_timeout_s: float = Field(default=10.0, gt=0, le=300)
    """How long one delivery (resolving, connecting, sending, the response's status) may take."""
    webhook_max_attempts: int = Field(default=8, ge=1, le=100)
    """Deliveries tried before the webhook is given up as failed."""
    webhook_retry_base_s: float = Field(default=10.0, ge=0)
    """Delay after the first failed delivery; it doubles after each one (with jitter)."""
    webhook_retry_cap_s: float = Field(default=3600.0, ge=0)
    """Longest delay between two deliveries."""

    max_upload_bytes: int = Field(default=2 * 1024**3, gt=0)
    max_json_bytes: int = Field(default=4 * 1024**2, gt=0)
    """Largest JSON request body; larger ones get 413 (file routes use max_upload_bytes)."""
    claim_batch_cap: int = Field(default=64, ge=1)

    # Uploads and the lifetime of their blobs.
    upload_grace_s: float = Field(default=86400.0, gt=0)
    """An upload no new job has named for this long is forgotten; its file is deleted unless a
    job still uses it. Also how long a file may take to arrive before its space is reclaimed."""
    max_multipart_parts: int = Field(default=100, ge=1)
    """Most parts (the job field and its files) in one multipart submit; more get 413."""

    # Retention of finished jobs (server/services/retention.py), per state: a job is deleted this
    # long after it ended, with its events, and its blobs once nothing else names them. 0: kept.
    retain_completed_s: float = Field(default=7 * 86400, ge=0)
    """How long a completed job is kept after it ended (seconds); 0 keeps completed jobs forever."""
    retain_dead_s: float = Field(default=7 * 86400, ge=0)
    """How long a dead job is kept after it ended (seconds); 0 keeps dead jobs forever."""
    retain_cancelled_s: float = Field(default=7 * 86400, ge=0)
    """How long a cancelled job is kept after it ended (seconds); 0 keeps cancelled jobs forever."""
    retention_batch_size: int = Field(default=500, ge=1, le=10_000)
    """Jobs deleted per transaction, so that deleting many never holds the database for long."""

    job_type_retention_s: float = Field(default=7 * 86400, gt=0)
    """A job type no agent has declared for this long is no longer known (built-in types always are)."""
    auth_failure_rate_per_s: float = Field(default=1.0, gt=0)
    """Failed authentications one client address earns back per second."""
    auth_failure_burst: int = Field(default=20, ge=1)
    """Failed authentications one client address may make in a row before it gets 429."""
    metrics_counts_ttl_s: float = Field(default=2.0, ge=0)
    """How long /metrics reuses the job and agent counts it read (seconds); 0: read on every scrape."""
    dashboard_session_s: float = Field(default=43200, gt=0)
    """How long a dashboard sign-in lasts (seconds); then the visitor signs in again."""
    dashboard_secure_cookie: bool | None = None
    """Mark the dashboard's cookies ``Secure``; None: when the request came over HTTPS."""

    @field_validator("dashboard_secure_cookie", mode="before")
    @classmethod
    def _empty_flag_means_unset(cls, value: object) -> object:
        return None if value == "" else value

    log_level: str = "INFO"
    log_format: LogFormat = "text"
    """``text`` for a terminal, ``json`` (one object per line) for a log collector."""

    @field_validator("database_url", "blob_dir", mode="before")
    @classmethod
    def _empty_means_default(cls, value: object) -> object:
        return None if value == "" else value  # TASKPOST_BLOB_DIR= (empty) means unset

    @field_validator("admin_key")
    @classmethod
    def _check_admin_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value():
            return None  # TASKPOST_ADMIN_KEY= (empty) means unset
        if len(value.get_secret_value()) < MIN_ADMIN_KEY_LENGTH:
            raise ValueError(
                f"TASKPOST_ADMIN_KEY must be at least {MIN_ADMIN_KEY_LENGTH} characters "
                "(e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))'), "
                "or unset to have one generated"
            )
        return value

    @field_validator("log_level")
    @classmethod
    def _check_log_level(cls, value: str) -> str:
        level = value.strip().upper()
        if level not in LOG_LEVELS:
            raise ValueError(f"log_level must be one of {', '.join(LOG_LEVELS)}")
        return level

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'taskpost.db').as_posix()}"

    def resolved_blob_dir(self) -> Path:
        return self.blob_dir if self.blob_dir is not None else self.data_dir / "blobs"

    # Connections and TLS of `taskpost server` (server/serve.py; see docs/security.md).
    keep_alive_s: int = Field(default=5, ge=1)
    """An idle keep-alive connection is closed after this many seconds."""
    header_timeout_s: float = Field(default=10.0, gt=0)
    """A connection must complete a request's headers this long after opening or its first byte."""
    max_connections: int = Field(default=1000, ge=1)
    """Client connections served at once; past it a new one is answered 503 ``overloaded``."""
    forwarded_allow_ips: str = ""
    """Proxies whose X-Forwarded-For/-Proto are trusted (comma-separated addresses); empty: none."""
    ssl_certfile: Path | None = None
    """PEM certificate (chain) to serve HTTPS with; the key too, unless ssl_keyfile is set."""
    ssl_keyfile: Path | None = None

    @field_validator("ssl_certfile", "ssl_keyfile", mode="before")
    @classmethod
    def _empty_path_means_unset(cls, value: object) -> object:
        return None if value == "" else value

    # Blobs in S3 or an S3-compatible store instead of blob_dir (server/blobs/s3.py; needs the
    # extra: pip install 'taskpost[s3]'). Every replica of a coordinator must share one store.
    blob_url: str | None = None
    """``s3://bucket/prefix``: keep inputs and outputs in that bucket under that prefix; unset: blob_dir."""
    s3_endpoint_url: str | None = None
    """The S3 API of an S3-compatible store (e.g. ``http://minio:9000``); unset: AWS S3."""
    s3_region: str | None = None
    """The bucket's region; unset: from the AWS configuration (``AWS_REGION``, profile)."""
    s3_access_key_id: str | None = None
    s3_secret_access_key: SecretStr | None = None
    """With s3_access_key_id; both unset: botocore's credential chain (``AWS_*`` variables, profile,
    instance or pod role)."""
    s3_addressing_style: Literal["auto", "virtual", "path"] = "auto"
    """``path`` puts the bucket in the URL's path, as most self-hosted stores need; ``virtual`` in
    the host name."""
    s3_part_size_bytes: int = Field(default=8 * 1024**2, ge=5 * 1024**2, le=5 * 1024**3)
    """Larger blobs go up in parts of this size as they arrive (about two parts in memory)."""
    s3_max_connections: int = Field(default=64, ge=1)
    """Connections to the store at once; every upload or download in progress holds one."""

    @field_validator(
        "blob_url", "s3_endpoint_url", "s3_region", "s3_access_key_id", "s3_secret_access_key", mode="before"
    )
    @classmethod
    def _empty_text_means_unset(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("blob_url")
    @classmethod
    def _check_blob_url(cls, value: str | None) -> str | None:
        if value is not None:
            parts = urlsplit(value)
            if parts.scheme != "s3" or not parts.netloc or parts.query or parts.fragment:
                raise ValueError(f"TASKPOST_BLOB_URL must look like s3://bucket/prefix, not {value!r}")
        return value

    @model_validator(mode="after")
    def _check_blob_store(self) -> Self:
        if self.blob_url is None:
            return self
        if self.blob_dir is not None:
            raise ValueError("set TASKPOST_BLOB_URL or TASKPOST_BLOB_DIR, not both")
        if (self.s3_access_key_id is None) != (self.s3_secret_access_key is None):
            raise ValueError(
                "set both TASKPOST_S3_ACCESS_KEY_ID and TASKPOST_S3_SECRET_ACCESS_KEY, or neither"
            )
        if self.max_upload_bytes > 10_000 * self.s3_part_size_bytes:
            raise ValueError(
                "S3 takes at most 10,000 parts: raise TASKPOST_S3_PART_SIZE_BYTES to at least "
                "TASKPOST_MAX_UPLOAD_BYTES / 10000"
            )
        return self
