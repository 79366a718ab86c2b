"""Provider profiles and how a job's provider is resolved from them, the settings and OPENAI_*."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from taskpost.agent.errors import ConfigError
from taskpost.agent.handlers.base import HandlerError
from taskpost.agent.llm.profiles import Prices, Profile, load_profiles, resolve_provider
from taskpost.agent.settings import AgentSettings

TOML = """
[default]
context_tokens = 4096

[local]
base_url = "http://127.0.0.1:8080/v1/"
model = "qwen"
api_key_env = "LOCAL_KEY"
prices = { prompt = 1.5, completion = 6.0 }
"""


@pytest.fixture
def profiles(tmp_path: Path) -> dict[str, Profile]:
    path = tmp_path / "llm.toml"
    path.write_text(TOML)
    return load_profiles(path)


def _refusal(settings: AgentSettings, profiles: dict[str, Profile], **kwargs: Any) -> HandlerError:
    kwargs.setdefault("environ", {})
    with pytest.raises(HandlerError) as caught:
        resolve_provider(settings, profiles, provider=kwargs.pop("provider", None), model=None, **kwargs)
    assert caught.value.retryable is False
    return caught.value


def test_a_profile_gives_url_model_key_and_prices(
    make_settings: Callable[..., AgentSettings], profiles: dict[str, Profile]
) -> None:
    settings = make_settings(llm_api_key="settings-key")
    provider = resolve_provider(settings, profiles, provider="local", model=None, environ={"LOCAL_KEY": "k1"})
    assert (provider.name, provider.base_url, provider.model) == ("local", "http://127.0.0.1:8080/v1", "qwen")
    assert provider.api_key == "k1" and "k1" not in repr(provider)
    assert provider.prices == Prices(prompt=1.5, completion=6.0)
    assert provider.prices.cost(1_000_000, 500_000) == 4.5
    assert provider.context_tokens == 8192
    assert replace(provider, base_url="https://u:pw@[::1]:8443/v1?k=s").display_url == "https://[::1]:8443/v1"
    other = resolve_provider(settings, profiles, provider="local", model="bigger", environ={"LOCAL_KEY": "k"})
    assert other.model == "bigger" and other.prices is None  # the prices are the profile model's


def test_without_a_provider_the_default_profile_and_the_settings_then_openai_variables(
    make_settings: Callable[..., AgentSettings], profiles: dict[str, Profile]
) -> None:
    settings = make_settings(llm_base_url="http://127.0.0.1:1/v1", llm_model="m", llm_api_key="sk")
    provider = resolve_provider(settings, profiles, provider=None, model=None, environ={})
    assert (provider.name, provider.context_tokens, provider.api_key) == ("default", 4096, "sk")
    environ = {"OPENAI_BASE_URL": "http://127.0.0.1:2/v1", "OPENAI_API_KEY": "env-key"}
    fallback = resolve_provider(make_settings(), {}, provider=None, model="job-model", environ=environ)
    assert (fallback.base_url, fallback.api_key, fallback.model) == (
        "http://127.0.0.1:2/v1",
        "env-key",
        "job-model",
    )


def test_what_is_missing_is_named(
    make_settings: Callable[..., AgentSettings], profiles: dict[str, Profile]
) -> None:
    no_url = _refusal(make_settings(llm_model="m"), {})
    assert no_url.kind == "llm_config" and "TASKPOST_LLM_BASE_URL" in no_url.message
    bad_url = _refusal(make_settings(llm_base_url="127.0.0.1:8080", llm_model="m"), {})
    assert bad_url.kind == "llm_config" and "http://" in bad_url.message
    no_model = _refusal(make_settings(llm_base_url="http://127.0.0.1:1/v1"), {})
    assert no_model.kind == "llm_model" and "TASKPOST_LLM_MODEL" in no_model.message
    unknown = _refusal(make_settings(), profiles, provider="cloud")
    assert unknown.kind == "bad_params" and "default, local" in unknown.message
    no_key = _refusal(make_settings(), profiles, provider="local")
    assert no_key.kind == "llm_auth" and "LOCAL_KEY" in no_key.message


def test_a_json_file_works_and_a_bad_file_is_a_config_error(tmp_path: Path) -> None:
    good = tmp_path / "llm.json"
    good.write_text(json.dumps({"x": {"base_url": "http://127.0.0.1:1/v1", "context_tokens": 2048}}))
    assert load_profiles(good)["x"].context_tokens == 2048
    assert load_profiles(None) == {}
    bad = tmp_path / "bad.toml"
    bad.write_text('[x]\nbase_url = "u"\napi_key = "inline keys are refused"\n')
    with pytest.raises(ConfigError, match="api_key"):
        load_profiles(bad)
    with pytest.raises(ConfigError):
        load_profiles(tmp_path / "missing.toml")
