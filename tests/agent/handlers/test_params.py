"""What handlers declare about their params, and that the agent sends it when it registers."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, get_args

import pytest
from pydantic import BaseModel

from taskpost.agent import __version__
from taskpost.agent.client import CoordinatorClient
from taskpost.agent.handlers import BUILTIN_HANDLERS
from taskpost.agent.handlers.base import TaskContext, handler_schema
from taskpost.agent.handlers.params import OcrEngineName
from taskpost.agent.media.ocr_engines import ENGINE_FACTORIES
from taskpost.agent.runner import run_agent
from taskpost.agent.settings import AgentSettings
from taskpost.agent.shutdown import Shutdown
from tests.agent.live import LiveCoordinator, eventually


class _Plain:
    task_type = "plain"

    def setup(self, settings: AgentSettings) -> None:
        """Nothing."""

    def run(self, ctx: TaskContext) -> Any:
        return None


class _Size(BaseModel):
    width: int


class _Declared(_Plain):
    task_type = "declared"
    params_model = _Size
    version = "7.1"


class _Broken(_Plain):
    task_type = "broken"
    params_model = object  # not a pydantic model


def test_each_built_in_handler_declares_its_params() -> None:
    for entry_point in BUILTIN_HANDLERS:
        declared = handler_schema(entry_point.load()(), __version__)
        assert declared is not None, entry_point.name
        assert declared.version == __version__
        open_ended = declared.params_schema["additionalProperties"]
        assert open_ended is (entry_point.name == "noop"), entry_point.name


def test_a_third_party_handler_may_declare_a_version_or_nothing(caplog: pytest.LogCaptureFixture) -> None:
    assert handler_schema(_Plain(), "1.0") is None
    declared = handler_schema(_Declared(), "1.0")
    assert declared is not None and declared.version == "7.1"
    assert declared.params_schema["required"] == ["width"]
    assert handler_schema(_Broken(), "1.0") is None
    assert "has no JSON Schema" in caplog.text


def test_the_ocr_engines_declared_are_those_the_agent_knows() -> None:
    assert set(get_args(OcrEngineName)) == set(ENGINE_FACTORIES)


@pytest.mark.anyio
async def test_the_agent_sends_its_schemas_when_it_registers(
    live: LiveCoordinator, client: CoordinatorClient, make_settings: Callable[..., AgentSettings]
) -> None:
    shutdown = Shutdown()
    settings = make_settings(task_types=["noop"])
    running = asyncio.ensure_future(
        run_agent(settings, client=client, shutdown=shutdown, install_signals=False)
    )
    try:
        await eventually(live.workers, "the agent to register")
        stored = live.api.coord.param_schemas["noop"]
        assert stored.version == __version__
        assert stored.params_schema is not None and stored.params_schema["additionalProperties"] is True
    finally:
        shutdown.request()
        assert await asyncio.wait_for(running, timeout=30) == 0
