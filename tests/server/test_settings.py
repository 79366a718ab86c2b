"""The coordinator's settings: every one documented in configs/coordinator.env.example."""

from __future__ import annotations

from pathlib import Path

import pytest

from taskpost.server.settings import Settings

EXAMPLE = Path(__file__).resolve().parents[2] / "configs" / "coordinator.env.example"


def test_the_env_example_documents_every_setting_and_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    text = EXAMPLE.read_text()
    for name in Settings.model_fields:
        assert f"TASKPOST_{name.upper()}=" in text, name
    for name in Settings.model_fields:
        monkeypatch.delenv(f"TASKPOST_{name.upper()}", raising=False)
    loaded = Settings(_env_file=EXAMPLE)
    assert loaded == Settings(_env_file=None)  # every value shown is the default
