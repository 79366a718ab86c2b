"""CoordinatorClient on answers the coordinator itself never gives: proxies, crashes, cut connections.

These need respx: the real coordinator (tests/agent/test_client.py) cannot be made to answer a
502 from a proxy or to drop a connection. Error bodies use the coordinator's own codes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import respx

from taskpost.agent.client import CoordinatorClient
from taskpost.agent.errors import CoordinatorError, CoordinatorUnavailable, WorkerUnknown
from taskpost.protocol import API_PREFIX, Outcome, TaskCompletion, TaskProgress

pytestmark = pytest.mark.anyio

SERVER = "http://coordinator.test"


@pytest.fixture
def router() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=SERVER + API_PREFIX, assert_all_mocked=True) as mock:
        yield mock


@pytest.fixture
async def client() -> AsyncIterator[CoordinatorClient]:
    async with CoordinatorClient(SERVER, "tp_w_key") as http:
        yield http


@pytest.mark.parametrize(
    ("status", "kwargs"),
    [
        (500, {"json": {"error": {"code": "internal_error", "message": "boom", "details": None}}}),
        (502, {"text": "<html><body>502 Bad Gateway</body></html>"}),
        (503, {"text": "upstream connect error"}),
        (504, {}),
    ],
)
async def test_server_and_proxy_errors_are_unavailable(
    router: respx.MockRouter, client: CoordinatorClient, status: int, kwargs: dict[str, object]
) -> None:
    router.post("/workers/w1/heartbeat").respond(status, **kwargs)
    with pytest.raises(CoordinatorUnavailable, match=str(status)):
        await client.heartbeat("w1", [TaskProgress(job_id="j", lease_token="t")])


@pytest.mark.parametrize(
    "error", [httpx.ConnectError("refused"), httpx.RemoteProtocolError("peer closed connection")]
)
async def test_refused_and_dropped_connections_are_unavailable(
    router: respx.MockRouter, client: CoordinatorClient, error: Exception
) -> None:
    router.post("/workers/w1/complete").mock(side_effect=error)
    done = TaskCompletion(job_id="j", lease_token="t", outcome=Outcome.FAILED, error_message="x")
    with pytest.raises(CoordinatorUnavailable, match=type(error).__name__):
        await client.complete("w1", [done])


async def test_a_download_cut_off_midway_leaves_no_file(
    router: respx.MockRouter, client: CoordinatorClient, tmp_path: Path
) -> None:
    router.get("/tasks/j1/inputs/a.bin").mock(side_effect=httpx.ReadError("connection reset"))
    with pytest.raises(CoordinatorUnavailable, match="ReadError"):
        await client.download_input("j1", "a.bin", "lease", tmp_path / "a.bin")
    assert not (tmp_path / "a.bin").exists()


async def test_an_answer_that_is_not_the_protocol_is_a_coordinator_error(
    router: respx.MockRouter, client: CoordinatorClient
) -> None:
    router.post("/workers/w1/heartbeat").respond(200, html="<html>a captive portal</html>")
    with pytest.raises(CoordinatorError, match="unexpected answer") as caught:
        await client.heartbeat("w1", [])
    assert caught.value.status == 200


async def test_every_exchange_is_reported_answered_or_not(
    router: respx.MockRouter, client: CoordinatorClient
) -> None:
    seen: list[bool] = []
    client.on_exchange = seen.append
    route = router.post("/workers/w1/heartbeat")
    route.respond(200, json={"tasks": [], "drain": False})
    await client.heartbeat("w1", [])
    route.respond(404, json={"error": {"code": "worker_not_found", "message": "?", "details": None}})
    with pytest.raises(WorkerUnknown):
        await client.heartbeat("w1", [])
    route.respond(503)
    with pytest.raises(CoordinatorUnavailable):
        await client.heartbeat("w1", [])
    route.mock(side_effect=httpx.ConnectError("refused"))
    with pytest.raises(CoordinatorUnavailable):
        await client.heartbeat("w1", [])
    assert seen == [True, True, False, False]
