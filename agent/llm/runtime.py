"""What the ``analyze`` and ``describe`` handlers share: settings, profiles, a client per task."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from taskpost.agent.handlers.base import HandlerError, TaskContext
from taskpost.agent.llm.client import LlmClient
from taskpost.agent.llm.profiles import Profile, Provider, load_profiles, resolve_provider

if TYPE_CHECKING:
    from taskpost.agent.settings import AgentSettings


class LlmHandler:
    """Base of the handlers that call an OpenAI-compatible API."""

    requires: ClassVar[dict[str, str]] = {"openai": "taskpost[llm]"}
    backoff_base_s: float = 1.0
    """First wait before retrying a 429/5xx without Retry-After (tests shorten it)."""

    def __init__(self) -> None:
        self.settings: AgentSettings | None = None
        self.profiles: dict[str, Profile] = {}

    def setup(self, settings: AgentSettings) -> None:
        """Read the provider profiles once (a bad file drops the handler, with the reason)."""
        self.settings = settings
        self.profiles = load_profiles(settings.llm_profiles_file)

    def provider(self, *, provider: str | None, model: str | None) -> Provider:
        return resolve_provider(self._settings(), self.profiles, provider=provider, model=model)

    def client(self, ctx: TaskContext, provider: Provider) -> LlmClient:
        settings = self._settings()
        return LlmClient(
            provider,
            wait=ctx.wait_cancelled,
            timeout_s=settings.llm_timeout_s,
            max_retries=settings.llm_max_retries,
            backoff_base_s=self.backoff_base_s,
        )

    def _settings(self) -> AgentSettings:
        if self.settings is None:
            raise HandlerError("the handler was not set up", retryable=False, kind="llm_config")
        return self.settings
