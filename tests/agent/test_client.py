"""CoordinatorClient against a respx-mocked coordinator."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import respx

from agent.client import CoordinatorClient
from agent.errors import (
    AuthError,
    CoordinatorError,
    CoordinatorUnavailable,
    IntegrityError,
    LeaseLost,
    WorkerUnknown,
)
from protocol import ClaimedTask, Outcome, TaskCompletion, TaskProgress, WorkerRegister, WorkerType
from tests.agent.conftest import KEY, sha256

pytestmark = pytest.mark.anyio

CADENCE = {"heartbeat_interval_s": 10, "long_poll_s": 20, "lease_s": 30}


def error(code: str, message: str = "nope") -> dict[str, object]:
    return {"error": {"code": code, "message": message}}


async def test_register_sends_bearer_key_and_body(
    coordinator: respx.MockRouter, client: CoordinatorClient
) -> None:
    route = coordinator.post("/workers/register").respond(201, json={"worker_id": "w1", "cadence": CADENCE})
    registered = await client.register(
        WorkerRegister(name="a", worker_type=WorkerType.GPU, task_types=["noop"], labels=["x"])
    )
    assert registered.worker_id == "w1"
    assert registered.cadence.long_poll_s == 20
    request = route.calls.last.request
    assert request.headers["Authorization"] == f"Bearer {KEY}"
    body = json.loads(request.content)
    assert body["worker_type"] == "gpu" and body["task_types"] == ["noop"] and body["labels"] == ["x"]


async def test_claim_204_is_an_empty_answer(coordinator: respx.MockRouter, client: CoordinatorClient) -> None:
    route = coordinator.post("/workers/w1/claim").respond(204)
    response = await client.claim("w1", max_tasks=2, wait_s=20)
    assert response.tasks == [] and response.acks == []
    body = json.loads(route.calls.last.request.content)
    assert body == {"max_tasks": 2, "wait_s": 20.0, "completions": []}


async def test_claim_carries_completions_and_parses_tasks(
    coordinator: respx.MockRouter,
    client: CoordinatorClient,
    make_claim: Callable[..., ClaimedTask],
) -> None:
    task = make_claim({"a": 1})
    route = coordinator.post("/workers/w1/claim").respond(
        200,
        json={
            "tasks": [task.model_dump(mode="json")],
            "acks": [{"job_id": "old", "accepted": True, "state": "completed"}],
            "drain": False,
        },
    )
    done = TaskCompletion(job_id="old", lease_token="t", outcome=Outcome.SUCCEEDED, result={"x": 1})
    response = await client.claim("w1", max_tasks=1, wait_s=5, completions=[done])
    assert response.tasks[0].job_id == task.job_id
    assert response.acks[0].accepted
    sent = json.loads(route.calls.last.request.content)
    assert sent["completions"][0]["job_id"] == "old"
    assert sent["completions"][0]["result"] == {"x": 1}


@pytest.mark.parametrize(
    ("status", "body", "exc"),
    [
        (401, error("unauthorized"), AuthError),
        (403, error("forbidden"), AuthError),
        (404, error("worker_not_found"), WorkerUnknown),
        (409, error("stale_lease"), LeaseLost),
        (500, error("internal"), CoordinatorUnavailable),
        (503, {"detail": "down"}, CoordinatorUnavailable),
        (422, error("validation_error"), CoordinatorError),
        (404, error("job_not_found"), CoordinatorError),
    ],
)
async def test_errors_map_to_agent_exceptions(
    coordinator: respx.MockRouter,
    client: CoordinatorClient,
    status: int,
    body: dict[str, object],
    exc: type[Exception],
) -> None:
    coordinator.post("/workers/w1/heartbeat").respond(status, json=body)
    with pytest.raises(exc):
        await client.heartbeat("w1", [TaskProgress(job_id="j", lease_token="t")])


async def test_auth_error_says_which_setting_to_check(
    coordinator: respx.MockRouter, client: CoordinatorClient
) -> None:
    coordinator.post("/workers/register").respond(401, json=error("unauthorized", "bad key"))
    with pytest.raises(AuthError, match="TASKPOST_API_KEY"):
        await client.register(WorkerRegister(task_types=["noop"]))


async def test_connection_errors_are_unavailable(
    coordinator: respx.MockRouter, client: CoordinatorClient
) -> None:
    coordinator.post("/workers/w1/complete").mock(side_effect=httpx.ConnectError("refused"))
    done = TaskCompletion(job_id="j", lease_token="t", outcome=Outcome.FAILED, error_message="x")
    with pytest.raises(CoordinatorUnavailable, match="ConnectError"):
        await client.complete("w1", [done])


async def test_release_and_deregister(coordinator: respx.MockRouter, client: CoordinatorClient) -> None:
    release = coordinator.post("/workers/w1/release").respond(
        200, json={"acks": [{"job_id": "j", "accepted": True}]}
    )
    gone = coordinator.delete("/workers/w1").respond(204)
    response = await client.release("w1", [TaskProgress(job_id="j", lease_token="t")], reason="bye")
    assert response.acks[0].accepted
    assert json.loads(release.calls.last.request.content)["reason"] == "bye"
    await client.deregister("w1")
    assert gone.called


async def test_download_streams_to_disk_and_checks_sha256(
    coordinator: respx.MockRouter, client: CoordinatorClient, tmp_path: Path
) -> None:
    data = b"hello " * 100_000
    route = coordinator.get("/tasks/j1/inputs/a%20b.wav").respond(200, content=data)
    dest = tmp_path / "in.wav"
    size = await client.download_input("j1", "a b.wav", "lease-1", dest, sha256=sha256(data))
    assert size == len(data) and dest.read_bytes() == data
    assert route.calls.last.request.headers["X-Lease-Token"] == "lease-1"


async def test_download_sha256_mismatch_raises_and_removes_the_file(
    coordinator: respx.MockRouter, client: CoordinatorClient, tmp_path: Path
) -> None:
    coordinator.get("/tasks/j1/inputs/a.txt").respond(200, content=b"corrupted")
    dest = tmp_path / "a.txt"
    with pytest.raises(IntegrityError, match="sha256"):
        await client.download_input("j1", "a.txt", "lease-1", dest, sha256=sha256(b"original"))
    assert not dest.exists()


async def test_download_with_a_stale_lease(
    coordinator: respx.MockRouter, client: CoordinatorClient, tmp_path: Path
) -> None:
    coordinator.get("/tasks/j1/inputs/a.txt").respond(409, json=error("stale_lease"))
    with pytest.raises(LeaseLost):
        await client.download_input("j1", "a.txt", "old", tmp_path / "a.txt")
    assert not (tmp_path / "a.txt").exists()


async def test_upload_streams_the_file_with_its_digest(
    coordinator: respx.MockRouter, client: CoordinatorClient, tmp_path: Path
) -> None:
    data = b"\x00\x01" * 700_000
    path = tmp_path / "out.bin"
    path.write_bytes(data)
    route = coordinator.put("/tasks/j1/outputs/out.bin").respond(
        201, json={"name": "out.bin", "size": len(data), "sha256": sha256(data)}
    )
    info = await client.upload_output("j1", "out.bin", "lease-1", path)
    assert info.size == len(data)
    request = route.calls.last.request
    assert request.headers["X-Content-SHA256"] == sha256(data)
    assert request.headers["X-Lease-Token"] == "lease-1"
    assert request.headers["Content-Length"] == str(len(data))
    assert request.read() == data


async def test_upload_digest_refused_is_a_coordinator_error(
    coordinator: respx.MockRouter, client: CoordinatorClient, tmp_path: Path
) -> None:
    path = tmp_path / "o.txt"
    path.write_text("x")
    coordinator.put("/tasks/j1/outputs/o.txt").respond(422, json=error("digest_mismatch"))
    with pytest.raises(CoordinatorError) as info:
        await client.upload_output("j1", "o.txt", "lease-1", path)
    assert info.value.status == 422 and info.value.code == "digest_mismatch"
