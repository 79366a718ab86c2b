"""AgentSettings: environment, .env, comma-separated lists and defaults."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from taskpost.agent.cli import load_settings
from taskpost.agent.settings import AgentSettings
from taskpost.protocol import WorkerType


def test_reads_taskpost_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASKPOST_SERVER_URL", "http://coord:8000/")
    monkeypatch.setenv("TASKPOST_API_KEY", "secret-key-123")
    monkeypatch.setenv("TASKPOST_WORKER_TYPE", "gpu")
    monkeypatch.setenv("TASKPOST_MAX_CONCURRENT", "3")
    monkeypatch.setenv("TASKPOST_LABELS", "fast, eu ,fast")
    monkeypatch.setenv("TASKPOST_TASK_TYPES", "noop,ocr")
    monkeypatch.setenv("TASKPOST_FORCE_CPU", "true")
    settings = AgentSettings()
    assert settings.server_url == "http://coord:8000"
    assert settings.api_key.get_secret_value() == "secret-key-123"
    assert settings.worker_type is WorkerType.GPU
    assert settings.labels == ["fast", "eu"]
    assert settings.task_types == ["noop", "ocr"]
    assert settings.max_concurrent == 3
    assert settings.max_claim_batch == 3  # defaults to max_concurrent
    assert settings.force_cpu is True


def test_json_lists_and_empty_lists(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASKPOST_LABELS", '["a", "b"]')
    monkeypatch.setenv("TASKPOST_TASK_TYPES", "")
    settings = AgentSettings(server_url="http://x", api_key="k")
    assert settings.labels == ["a", "b"]
    assert settings.task_types == []


def test_reads_dotenv_file(tmp_path: Path) -> None:
    env = tmp_path / "worker.env"
    env.write_text(
        "TASKPOST_SERVER_URL=http://main:8000\nTASKPOST_API_KEY=abcdefgh\n"
        "TASKPOST_LABELS=x,y\nTASKPOST_DATABASE_URL=ignored-coordinator-setting\n"
    )
    settings = AgentSettings(_env_file=env)
    assert settings.server_url == "http://main:8000"
    assert settings.labels == ["x", "y"]


def test_defaults_and_masking() -> None:
    settings = AgentSettings(server_url="https://c", api_key="abcdefghijkl")
    assert settings.worker_type is WorkerType.CPU
    assert settings.poll_interval == 5.0
    assert settings.health_port == 8080
    assert settings.log_format == "json"
    assert settings.max_claim_batch == 1
    assert settings.masked_api_key() == "abcdef…"
    summary = settings.public_summary()
    assert summary["api_key"] == "abcdef…"
    assert "abcdefghijkl" not in str(summary)


def test_required_and_invalid_values() -> None:
    with pytest.raises(ValidationError) as info:
        AgentSettings()
    missing = {error["loc"][0] for error in info.value.errors()}
    assert missing == {"server_url", "api_key"}
    with pytest.raises(ValidationError):
        AgentSettings(server_url="coord:8000", api_key="k")
    with pytest.raises(ValidationError):
        AgentSettings(server_url="http://c", api_key="k", log_level="LOUD")


def test_flags_override_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASKPOST_SERVER_URL", "http://from-env")
    monkeypatch.setenv("TASKPOST_API_KEY", "env-key")
    monkeypatch.setenv("TASKPOST_POLL_INTERVAL", "7")
    settings = load_settings({"poll_interval": 10.0, "labels": ["a", "b"], "name": None}, None)
    assert settings.server_url == "http://from-env"
    assert settings.poll_interval == 10.0
    assert settings.labels == ["a", "b"]


def test_the_env_example_documents_every_setting_and_loads() -> None:
    example = Path(__file__).resolve().parents[2] / "configs" / "http-worker.env.example"
    text = example.read_text()
    for name in AgentSettings.model_fields:
        assert f"TASKPOST_{name.upper()}=" in text, name
    settings = AgentSettings(_env_file=example)
    assert settings.max_claim_batch == settings.max_concurrent
    assert settings.task_types == [] and settings.work_dir is None


def test_empty_variables_mean_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASKPOST_NAME", "")
    monkeypatch.setenv("TASKPOST_MAX_CLAIM_BATCH", "")
    settings = AgentSettings(server_url="http://c", api_key="k", max_concurrent=4)
    assert settings.name and settings.max_claim_batch == 4
