"""The LLM client against a fake OpenAI-compatible server on 127.0.0.1: what it sends, our retries
(Retry-After honoured, long ones not slept), and the error kinds."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import pytest

from taskpost.agent.handlers.base import HandlerError
from taskpost.agent.llm.client import Cancelled, LlmClient
from taskpost.agent.llm.profiles import Provider
from taskpost.launch import free_port
from tests.support.fake_llm import expected_answer, fake_llm

pytest.importorskip("openai", reason="needs taskpost[llm]")

KEY = "sk-test-key-never-shown-0123456789"
MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hi."}]


def _client(base_url: str, *, retries: int = 3, wait: Callable[[float], bool] | None = None) -> LlmClient:
    provider = Provider(name="test", base_url=base_url, model="tiny-model", api_key=KEY)
    return LlmClient(
        provider,
        wait=wait or threading.Event().wait,
        timeout_s=10,
        max_retries=retries,
        backoff_base_s=0.01,
    )


def _failure(base_url: str, **kwargs: object) -> HandlerError:
    with _client(base_url, **kwargs) as client, pytest.raises(HandlerError) as caught:  # type: ignore[arg-type]
        client.chat(MESSAGES, max_tokens=64, temperature=0)
    return caught.value


def test_the_request_carries_model_messages_limits_and_the_key_only_in_its_header() -> None:
    with fake_llm() as llm, _client(llm.base_url) as client:
        completion = client.chat(MESSAGES, max_tokens=64, temperature=0.5)
    [request] = llm.requests
    assert request.path == "/v1/chat/completions"
    assert request.body == {"model": "tiny-model", "messages": MESSAGES, "max_tokens": 64, "temperature": 0.5}
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.headers["x-stainless-retry-count"] == "0"
    assert completion.answer == expected_answer("Say hi.")
    assert (completion.prompt_tokens, completion.completion_tokens) == (4, 1)
    assert completion.model == "tiny-model"
    assert completion.latency_s >= 0


def test_a_429_with_retry_after_is_waited_out_then_succeeds(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    waits: list[float] = []

    def wait(delay: float) -> bool:
        waits.append(delay)
        return threading.Event().wait(delay)

    with fake_llm([(429, {"retry-after": "1"}, None)]) as llm, _client(llm.base_url, wait=wait) as client:
        started = time.monotonic()
        completion = client.chat(MESSAGES, max_tokens=64, temperature=0)
        elapsed = time.monotonic() - started
    assert completion.answer == expected_answer("Say hi.")
    assert waits == [1.0]
    assert 1.0 <= elapsed < 5
    assert len(llm.requests) == 2
    assert "retry 1 of 3" in caplog.text
    assert KEY not in caplog.text


def test_a_long_retry_after_fails_at_once_retryable_with_that_delay() -> None:
    with fake_llm([(429, {"retry-after": "300"}, None)]) as llm:
        started = time.monotonic()
        error = _failure(llm.base_url)
        elapsed = time.monotonic() - started
    assert (error.kind, error.retryable, error.retry_delay_s) == ("provider_unavailable", True, 300)
    assert elapsed < 5
    assert len(llm.requests) == 1


def test_server_errors_past_the_retries_fail_retryable() -> None:
    with fake_llm([(500, {}, None)] * 3 + [(503, {"retry-after-ms": "20"}, None)]) as llm:
        error = _failure(llm.base_url, retries=3)
    assert (error.kind, error.retryable) == ("provider_unavailable", True)
    assert error.retry_delay_s == pytest.approx(0.02)
    assert "503" in error.message
    assert len(llm.requests) == 4
    assert [request.headers["x-stainless-retry-count"] for request in llm.requests] == ["0"] * 4


@pytest.mark.parametrize(
    ("status", "kind", "says"),
    [
        (401, "llm_auth", "TASKPOST_LLM_API_KEY"),
        (403, "llm_auth", "TASKPOST_LLM_API_KEY"),
        (404, "llm_model", "TASKPOST_LLM_MODEL"),
        (400, "llm_request", "400"),
    ],
)
def test_refusals_are_not_retried_and_say_what_to_fix(status: int, kind: str, says: str) -> None:
    with fake_llm([(status, {}, None)]) as llm:
        error = _failure(llm.base_url)
    assert (error.kind, error.retryable) == (kind, False)
    assert says in error.message
    assert KEY not in error.message
    assert len(llm.requests) == 1


def test_an_unknown_model_in_a_400_body_is_a_model_error() -> None:
    body = {
        "error": {
            "message": "model 'x' not found",
            "type": "invalid_request_error",
            "code": "model_not_found",
        }
    }
    with fake_llm([(400, {}, body)]) as llm:
        error = _failure(llm.base_url)
    assert error.kind == "llm_model"


def test_an_unreachable_api_is_a_retryable_network_error() -> None:
    error = _failure(f"http://127.0.0.1:{free_port()}/v1", retries=1)
    assert (error.kind, error.retryable) == ("network", True)


def test_a_cancelled_task_stops_waiting_to_retry() -> None:
    waits: list[float] = []

    def cancelled(delay: float) -> bool:
        waits.append(delay)
        return True

    with (
        fake_llm([(429, {"retry-after": "30"}, None)]) as llm,
        _client(llm.base_url, wait=cancelled) as client,
        pytest.raises(Cancelled),
    ):
        client.chat(MESSAGES, max_tokens=64, temperature=0)
    assert waits == [30.0]
    assert len(llm.requests) == 1
