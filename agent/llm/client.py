"""One chat completion at a time against an OpenAI-compatible API, with our own retries.

The ``openai`` client is built with ``max_retries=0``: its own retries sleep in a way nothing can
interrupt, and give up silently on a Retry-After over two minutes. Here a 429, a 5xx or a lost
connection is retried up to ``max_retries`` times, waiting the provider's Retry-After (else a
backoff) through a wait that a cancelled task cuts short. A Retry-After longer than
``max_wait_s`` is not waited for in the task: the attempt fails at once, retryable, with that delay.

Errors are ``HandlerError`` kinds: ``llm_auth`` (401/403), ``llm_model`` (404, unknown model),
``llm_request`` (another 4xx), ``provider_unavailable`` (429/5xx, retryable), ``network``
(connection, timeout; retryable). No message names the API key.
"""

from __future__ import annotations

import email.utils
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any

from taskpost.agent.backoff import Backoff
from taskpost.agent.handlers.base import HandlerError
from taskpost.agent.llm.profiles import Provider

if TYPE_CHECKING:
    import openai

logger = logging.getLogger(__name__)

RETRYABLE_STATUSES = frozenset({408, 409, 429})
MAX_WAIT_S = 60.0
NO_KEY = "no-key"
"""Sent when no key is configured: local servers (llama.cpp, Ollama) take any."""


class Cancelled(Exception):
    """The task was cancelled while waiting to retry, or between two calls."""


@dataclass(frozen=True)
class Completion:
    """One answer and what it cost."""

    answer: str
    model: str
    prompt_tokens: int | None
    completion_tokens: int | None
    latency_s: float


Wait = Callable[[float], bool]
"""Sleeps up to the given seconds; True when the task was cancelled (``TaskContext.wait_cancelled``)."""


class LlmClient:
    """Chat completions for one provider; a context manager that closes its connections."""

    def __init__(
        self,
        provider: Provider,
        *,
        wait: Wait,
        timeout_s: float = 120.0,
        max_retries: int = 3,
        backoff_base_s: float = 1.0,
        max_wait_s: float = MAX_WAIT_S,
    ) -> None:
        import openai

        self.provider = provider
        self.max_retries = max_retries
        self.max_wait_s = max_wait_s
        self._wait = wait
        self._backoff_base_s = backoff_base_s
        self._client = openai.OpenAI(
            base_url=provider.base_url,
            api_key=provider.api_key or NO_KEY,
            timeout=timeout_s,
            max_retries=0,
        )

    def __enter__(self) -> LlmClient:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._client.close()

    def chat(self, messages: list[dict[str, Any]], *, max_tokens: int, temperature: float) -> Completion:
        """The model's answer to ``messages``, retried as the module says."""
        import openai

        backoff = Backoff(self._backoff_base_s, cap_s=30.0)
        for attempt in range(self.max_retries + 1):
            started = time.monotonic()
            try:
                response = self._client.chat.completions.create(
                    model=self.provider.model,
                    messages=messages,  # type: ignore[arg-type]
                    max_tokens=max_tokens,
                    temperature=temperature,
                )
            except openai.APIStatusError as exc:
                retry_after = _retry_after(exc.response.headers)
                failure = self._status_error(exc.status_code, _error_code(exc.body), retry_after)
            except openai.APIConnectionError as exc:
                failure = HandlerError(
                    f"the LLM API at {self.provider.display_url} could not be reached: {type(exc).__name__}",
                    kind="network",
                )
                retry_after = None
            else:
                return _completion(response, self.provider.model, time.monotonic() - started)
            if not failure.retryable:
                raise failure
            if retry_after is not None and retry_after > self.max_wait_s:
                failure.retry_delay_s = retry_after
                raise failure
            if attempt == self.max_retries:
                failure.retry_delay_s = retry_after
                raise failure
            delay = retry_after if retry_after is not None else backoff.next_delay()
            logger.warning(
                "%s; retry %d of %d in %.1f s",
                failure.message,
                attempt + 1,
                self.max_retries,
                delay,
                extra={"action": "llm_retry", "provider": self.provider.name},
            )
            if self._wait(delay):
                raise Cancelled
        raise AssertionError("unreachable")  # pragma: no cover

    def _status_error(self, status: int, code: str | None, retry_after: float | None) -> HandlerError:
        where = f"the LLM API at {self.provider.display_url}"
        if status in (401, 403):
            return HandlerError(
                f"{where} refused the API key ({status}): set {self.provider.key_source}",
                retryable=False,
                kind="llm_auth",
            )
        if status == 404 or code == "model_not_found":
            return HandlerError(
                f"{where} does not know model {self.provider.model!r} ({status}): set TASKPOST_LLM_MODEL, "
                "the profile's model or the job's model param (and check that the base URL ends in /v1)",
                retryable=False,
                kind="llm_model",
            )
        if status in RETRYABLE_STATUSES or status >= 500:
            wait = f", Retry-After {retry_after:g} s" if retry_after is not None else ""
            return HandlerError(f"{where} answered {status}{wait}", kind="provider_unavailable")
        return HandlerError(
            f"{where} refused the request ({status}{', ' + code if code else ''})",
            retryable=False,
            kind="llm_request",
        )


def _completion(response: openai.types.chat.ChatCompletion, model: str, latency_s: float) -> Completion:
    answer = response.choices[0].message.content if response.choices else None
    usage = response.usage
    return Completion(
        answer=(answer or "").strip(),
        model=response.model or model,
        prompt_tokens=usage.prompt_tokens if usage else None,
        completion_tokens=usage.completion_tokens if usage else None,
        latency_s=round(latency_s, 3),
    )


def _error_code(body: object) -> str | None:
    if isinstance(body, Mapping):
        error = body.get("error", body)
        if isinstance(error, Mapping) and isinstance(error.get("code"), str):
            return str(error["code"])
    return None


def _retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds from ``retry-after-ms`` or ``retry-after`` (seconds or an HTTP date)."""
    millis = headers.get("retry-after-ms")
    if millis is not None:
        try:
            return max(0.0, float(millis) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())
