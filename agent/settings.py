"""Agent configuration: every field reads ``TASKPOST_<NAME>`` from the environment or ``.env``."""

from __future__ import annotations

import ipaddress
import json
import os
import socket
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from taskpost.agent.key_file import read_api_key_file
from taskpost.protocol import FILES_ROOT_LABEL, WorkerType

LogFormat = Literal["json", "text"]
CommaList = Annotated[list[str], NoDecode]
"""A list read from the environment as ``a,b,c`` (a JSON array is accepted too)."""


def default_name() -> str:
    """``hostname-pid``: unique per process on a host, readable in the coordinator's stats."""
    return f"{socket.gethostname()}-{os.getpid()}"


class AgentSettings(BaseSettings):
    """Configuration of one agent process, passed explicitly to ``run_agent``."""

    model_config = SettingsConfigDict(
        env_prefix="TASKPOST_",
        env_file=".env",
        env_ignore_empty=True,
        extra="ignore",
        validate_default=True,
    )

    server_url: str = Field(min_length=1)
    """Base URL of the coordinator, e.g. ``http://127.0.0.1:8000`` (no ``/api/v1``)."""
    api_key: SecretStr
    """A key with the ``worker`` (or ``admin``) role; read from ``api_key_file`` when that is set."""
    api_key_file: Path | None = None
    """A file holding the key (kept out of the command line, where ``ps`` shows it)."""
    worker_type: WorkerType = WorkerType.CPU
    name: str = Field(default_factory=default_name, min_length=1, max_length=200)
    poll_interval: float = Field(default=5.0, gt=0, le=3600)
    """First delay of the back-off while the coordinator is unreachable (claims are long polls)."""
    max_concurrent: int = Field(default=1, ge=1, le=1024)
    max_claim_batch: int | None = Field(default=None, ge=1, le=256)
    """Most tasks asked for in one claim; defaults to max_concurrent."""
    claim_linger_s: float = Field(default=0.005, ge=0, le=1)
    """While tasks are running, how long a freed slot waits for others to free up so that one
    claim (carrying their completions) serves several slots. An idle agent claims at once."""
    task_types: CommaList = Field(default_factory=list)
    """Task types to advertise; empty means every installed handler."""
    labels: CommaList = Field(default_factory=list)
    health_host: str = "0.0.0.0"
    health_port: int = Field(default=8080, ge=0, le=65535)
    """Port of ``GET /health``; 0 disables the endpoint."""
    shutdown_grace_s: float = Field(default=30.0, ge=0)
    work_dir: Path | None = None
    """Root of the per-task folders; defaults to ``agent.workdir.default_work_dir()`` (private to
    the user). Refused at start if it is a symlink, another user's, or writable by others."""
    force_cpu: bool = False
    """Handlers that could use a GPU are asked to run on the CPU."""
    files_roots: CommaList = Field(default_factory=list)
    """Directories whose files jobs may name by ``local_path`` instead of uploading them. Each
    root is advertised as the label ``files-root:<path>``, so only agents that have it get such
    jobs."""
    log_level: str = "INFO"
    log_format: LogFormat = "json"

    # -- URLs that jobs name (webpage, url_audio, transcription by url) ----------------------
    allow_private_urls: bool = False
    """Let jobs fetch from private, loopback and link-local addresses. Off: the agent must not be
    a way into the network it runs in."""
    url_allow_networks: CommaList = Field(default_factory=list)
    """Networks (CIDR) allowed even while private addresses are refused, e.g. ``10.0.5.0/24``."""
    webpage_robots: bool = True
    """The ``webpage`` task honours robots.txt unless a job or this setting says otherwise."""

    # -- LLM provider (analyze, describe) -----------------------------------------------------
    llm_base_url: str | None = None
    """An OpenAI-compatible API, e.g. ``http://127.0.0.1:8080/v1``; else ``OPENAI_BASE_URL``."""
    llm_api_key: SecretStr | None = None
    """Else ``OPENAI_API_KEY``. Never put in a job, its result or a log line."""
    llm_model: str | None = None
    llm_profiles_file: Path | None = None
    """A TOML or JSON file of named provider profiles (base URL, key variable, model, context
    size, prices) that jobs choose with the ``provider`` param."""
    llm_timeout_s: float = Field(default=120.0, gt=0, le=3600)
    llm_max_retries: int = Field(default=3, ge=0, le=20)
    """Waits on 429 and 5xx answers (honouring Retry-After) before the attempt fails, retryable."""

    @model_validator(mode="before")
    @classmethod
    def _key_from_file(cls, data: Any) -> Any:
        if not isinstance(data, dict) or data.get("api_key_file") in (None, ""):
            return data
        if data.get("api_key") not in (None, ""):
            raise ValueError(
                "give the API key once: TASKPOST_API_KEY / --api-key or "
                "TASKPOST_API_KEY_FILE / --api-key-file, not both"
            )
        return {**data, "api_key": read_api_key_file(Path(data["api_key_file"]))}

    @field_validator("task_types", "labels", "files_roots", "url_allow_networks", mode="before")
    @classmethod
    def _split_commas(cls, value: Any) -> Any:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [part.strip() for part in text.split(",") if part.strip()]
        return value

    @field_validator("task_types", "labels", "files_roots", "url_allow_networks", mode="after")
    @classmethod
    def _dedupe(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(item.strip() for item in value if item.strip()))

    @field_validator("server_url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if not value.startswith(("http://", "https://")):
            raise ValueError("server_url must start with http:// or https://")
        return value

    @field_validator("log_level")
    @classmethod
    def _check_level(cls, value: str) -> str:
        level = value.strip().upper()
        if level not in {"CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG"}:
            raise ValueError("log_level must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL")
        return level

    @model_validator(mode="after")
    def _default_batch(self) -> AgentSettings:
        if self.max_claim_batch is None:
            self.max_claim_batch = self.max_concurrent
        return self

    @field_validator("url_allow_networks", mode="after")
    @classmethod
    def _check_networks(cls, value: list[str]) -> list[str]:
        for text in value:
            ipaddress.ip_network(text, strict=False)  # its ValueError names the bad network
        return value

    @field_validator("files_roots", mode="after")
    @classmethod
    def _absolute_roots(cls, value: list[str]) -> list[str]:
        roots = [str(Path(root).expanduser().resolve()) for root in value]
        for root in roots:
            if not Path(root).is_dir():
                raise ValueError(f"files root {root} is not a directory")
        return roots

    @property
    def advertised_labels(self) -> list[str]:
        """The labels sent at registration: the configured ones plus one per files root."""
        return list(dict.fromkeys([*self.labels, *(FILES_ROOT_LABEL + root for root in self.files_roots)]))

    @property
    def claim_batch(self) -> int:
        """max_claim_batch once resolved (never None after validation)."""
        return self.max_claim_batch or self.max_concurrent

    def masked_api_key(self) -> str:
        """The first 6 characters of the key followed by an ellipsis."""
        return self.api_key.get_secret_value()[:6] + "…"

    def public_summary(self) -> dict[str, Any]:
        """The effective configuration, safe to log."""
        data = self.model_dump(mode="json", exclude={"api_key", "llm_api_key"})
        data["api_key"] = self.masked_api_key()
        data["llm_api_key"] = "set" if self.llm_api_key else None
        return data
