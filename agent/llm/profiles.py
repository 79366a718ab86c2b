"""Which OpenAI-compatible API a job talks to: the agent's settings, or a named provider profile.

A profiles file (``llm_profiles_file``, TOML or JSON) maps names to tables::

    [local]                                   # a job picks it with "provider": "local"
    base_url = "http://127.0.0.1:8080/v1"
    model = "qwen2.5-7b-instruct"
    context_tokens = 32768

    [openai]
    base_url = "https://api.openai.com/v1"
    api_key_env = "OPENAI_API_KEY"            # the variable that holds the key, never the key
    model = "gpt-4o-mini"
    prices = { prompt = 0.15, completion = 0.60 }   # USD per 1M tokens, for this model

A profile named ``default`` serves jobs that name no provider. A field a profile leaves out comes
from the agent's settings (``llm_base_url``, ``llm_api_key``, ``llm_model``), then from
``OPENAI_BASE_URL`` / ``OPENAI_API_KEY``.
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from taskpost.agent.errors import ConfigError
from taskpost.agent.handlers.base import HandlerError

if TYPE_CHECKING:
    from taskpost.agent.settings import AgentSettings

DEFAULT_PROFILE = "default"
DEFAULT_CONTEXT_TOKENS = 8192
KEY_SETTING = "TASKPOST_LLM_API_KEY (or OPENAI_API_KEY)"


class Prices(BaseModel):
    """USD per 1 million tokens."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    prompt: float = Field(ge=0)
    completion: float = Field(ge=0)

    def cost(self, prompt_tokens: int | None, completion_tokens: int | None) -> float | None:
        if prompt_tokens is None or completion_tokens is None:
            return None
        return round((prompt_tokens * self.prompt + completion_tokens * self.completion) / 1e6, 8)


class Profile(BaseModel):
    """One named provider, as written in the profiles file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    base_url: str | None = Field(default=None, min_length=1)
    api_key_env: str | None = Field(default=None, min_length=1)
    model: str | None = Field(default=None, min_length=1)
    context_tokens: int | None = Field(default=None, ge=512, le=10_000_000)
    prices: Prices | None = None


@dataclass(frozen=True)
class Provider:
    """What one job uses: resolved from a profile and the settings. ``repr`` hides the key."""

    name: str
    base_url: str
    model: str
    context_tokens: int = DEFAULT_CONTEXT_TOKENS
    prices: Prices | None = None
    key_source: str = KEY_SETTING
    """Where the key comes from: named in the message of a refused key."""
    api_key: str | None = field(default=None, repr=False)

    @property
    def display_url(self) -> str:
        """``base_url`` without any user, password or query: safe in messages and logs."""
        parts = urlsplit(self.base_url)
        host = parts.hostname or ""
        netloc = f"[{host}]" if ":" in host else host
        return f"{parts.scheme}://{netloc}{f':{parts.port}' if parts.port else ''}{parts.path}"


def load_profiles(path: Path | None) -> dict[str, Profile]:
    """The profiles of ``path`` (none without a file); ``ConfigError`` when it cannot be read."""
    if path is None:
        return {}
    try:
        raw = path.read_bytes()
        data = json.loads(raw) if path.suffix.lower() == ".json" else tomllib.loads(raw.decode())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"llm_profiles_file {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"llm_profiles_file {path}: expected a table of named profiles")
    try:
        return {str(name): Profile.model_validate(value) for name, value in data.items()}
    except ValidationError as exc:
        raise ConfigError(f"llm_profiles_file {path}: {exc}") from exc


def resolve_provider(
    settings: AgentSettings,
    profiles: Mapping[str, Profile],
    *,
    provider: str | None,
    model: str | None,
    environ: Mapping[str, str] = os.environ,
) -> Provider:
    """The provider a job gets, or a non-retryable ``HandlerError`` saying which setting to fix."""
    name = provider or DEFAULT_PROFILE
    profile = profiles.get(name)
    if provider is not None and profile is None:
        known = ", ".join(sorted(profiles)) or "none: set llm_profiles_file"
        raise HandlerError(
            f"unknown LLM provider {provider!r} (profiles: {known})", retryable=False, kind="bad_params"
        )
    profile = profile or Profile()
    base_url = profile.base_url or settings.llm_base_url or environ.get("OPENAI_BASE_URL")
    if not base_url:
        raise HandlerError(
            "no LLM API configured: set TASKPOST_LLM_BASE_URL (--llm-base-url), OPENAI_BASE_URL, "
            "or a profile's base_url",
            retryable=False,
            kind="llm_config",
        )
    if not base_url.startswith(("http://", "https://")):
        raise HandlerError(
            "the LLM base URL must start with http:// or https:// (and usually end in /v1)",
            retryable=False,
            kind="llm_config",
        )
    chosen = model or profile.model or settings.llm_model
    if not chosen:
        raise HandlerError(
            "no LLM model: set TASKPOST_LLM_MODEL (--llm-model), the profile's model, "
            "or the job's model param",
            retryable=False,
            kind="llm_model",
        )
    key, key_source = _api_key(settings, profile, name, environ)
    return Provider(
        name=name,
        base_url=base_url.rstrip("/"),
        model=chosen,
        context_tokens=profile.context_tokens or DEFAULT_CONTEXT_TOKENS,
        prices=profile.prices if profile.model in (None, chosen) else None,
        key_source=key_source,
        api_key=key,
    )


def _api_key(
    settings: AgentSettings, profile: Profile, name: str, environ: Mapping[str, str]
) -> tuple[str | None, str]:
    if profile.api_key_env:
        source = f"the variable {profile.api_key_env} (api_key_env of profile {name!r})"
        key = environ.get(profile.api_key_env)
        if not key:
            raise HandlerError(f"no API key: set {source}", retryable=False, kind="llm_auth")
        return key, source
    if settings.llm_api_key is not None:
        return settings.llm_api_key.get_secret_value(), KEY_SETTING
    return environ.get("OPENAI_API_KEY") or None, KEY_SETTING
