"""Coordinator settings: every field reads ``TASKPOST_<NAME>`` from the environment or ``.env``."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from protocol.logs import LOG_LEVELS, LogFormat


class Settings(BaseSettings):
    """Configuration of one coordinator process, passed explicitly to ``create_app``."""

    model_config = SettingsConfigDict(env_prefix="TASKPOST_", env_file=".env", extra="ignore")

    data_dir: Path = Path("data")
    database_url: str | None = None
    """SQLAlchemy URL; defaults to a SQLite file in data_dir."""
    blob_dir: Path | None = None
    """Where inputs and outputs are kept; defaults to data_dir/blobs."""
    admin_key: SecretStr | None = None
    """Bootstrap admin key; when unset, one is generated and printed on first start."""

    lease_s: float = Field(default=30.0, gt=0)
    heartbeat_interval_s: float = Field(default=10.0, gt=0)
    long_poll_s: float = Field(default=20.0, ge=0, le=60)
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

    max_upload_bytes: int = Field(default=2 * 1024**3, gt=0)
    claim_batch_cap: int = Field(default=64, ge=1)

    log_level: str = "INFO"
    log_format: LogFormat = "text"
    """``text`` for a terminal, ``json`` (one object per line) for a log collector."""

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
