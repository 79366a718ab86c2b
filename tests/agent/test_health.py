"""The /health endpoint: the status rule and the tiny HTTP server."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Callable
from typing import Any

import pytest

from taskpost.agent.errors import ConfigError
from taskpost.agent.health import HealthServer, health_report, stale_after_s
from taskpost.agent.settings import AgentSettings
from taskpost.agent.state import AgentState

pytestmark = pytest.mark.anyio


async def get(port: int, path: str = "/health", method: str = "GET") -> tuple[int, dict[str, Any]]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"{method} {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    await writer.drain()
    raw = await reader.read()
    writer.close()
    await writer.wait_closed()
    head, _, body = raw.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body) if body else {}


def test_ok_after_recent_contact(make_settings: Callable[..., AgentSettings]) -> None:
    state = AgentState(worker_id="w1")
    state.touch(poll=True)
    status, body = health_report(make_settings(max_concurrent=2), state, ["noop"])
    assert status == 200
    assert body["status"] == "ok" and body["coordinator_reachable"] is True
    assert body["worker_id"] == "w1" and body["task_types"] == ["noop"] and body["max_concurrent"] == 2
    assert body["last_successful_poll"] is not None and body["seconds_since_poll"] >= 0


def test_unhealthy_after_silence_and_stopping(make_settings: Callable[..., AgentSettings]) -> None:
    state = AgentState(worker_id="w1")
    state.touch()
    assert state.last_contact is not None
    state.last_contact -= stale_after_s(state) + 1
    status, body = health_report(make_settings(), state, ["noop"])
    assert (status, body["status"], body["coordinator_reachable"]) == (503, "unhealthy", False)
    state.touch()
    state.stopping = True
    status, body = health_report(make_settings(), state, ["noop"])
    assert (status, body["status"]) == (503, "stopping")


def test_starting_agent_is_ok_until_the_silence_limit(make_settings: Callable[..., AgentSettings]) -> None:
    state = AgentState()
    status, body = health_report(make_settings(), state, ["noop"])
    assert status == 200 and body["coordinator_reachable"] is False and body["worker_id"] is None
    state.started_at = time.monotonic() - stale_after_s(state) - 1
    assert health_report(make_settings(), state, ["noop"])[0] == 503


async def test_http_server(make_settings: Callable[..., AgentSettings]) -> None:
    state = AgentState(worker_id="w1")
    state.touch()
    server = HealthServer(make_settings(), state, ["noop"], host="127.0.0.1", port=0)
    await server.start()
    try:
        status, body = await get(server.port)
        assert status == 200 and body["status"] == "ok" and body["running_tasks"] == []
        assert (await get(server.port, "/other"))[0] == 404
        assert (await get(server.port, "/health", "POST"))[0] == 405
        state.stopping = True
        assert (await get(server.port))[0] == 503
    finally:
        await server.stop()


def test_reachable_follows_the_latest_exchange(make_settings: Callable[..., AgentSettings]) -> None:
    state = AgentState(worker_id="w1")
    state.touch(poll=True)
    assert health_report(make_settings(), state, ["noop"])[1]["coordinator_reachable"] is True
    state.exchanged(False)  # a claim, heartbeat or completion got no answer
    status, body = health_report(make_settings(), state, ["noop"])
    assert (status, body["status"], body["coordinator_reachable"]) == (200, "ok", False)
    state.exchanged(True)
    assert health_report(make_settings(), state, ["noop"])[1]["coordinator_reachable"] is True


async def test_a_port_in_use_is_a_config_error_naming_the_setting(
    make_settings: Callable[..., AgentSettings],
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = HealthServer(make_settings(), AgentState(), ["noop"], host="127.0.0.1", port=port)
        with pytest.raises(ConfigError, match="TASKPOST_HEALTH_PORT / --health-port") as caught:
            await server.start()
    assert f"127.0.0.1:{port}" in str(caught.value) and "\n" not in str(caught.value)
    await server.stop()
