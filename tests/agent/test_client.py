"""CoordinatorClient against the real coordinator app: every answer is one the server really sends."""

from __future__ import annotations

from pathlib import Path

import pytest

from taskpost.agent.client import CoordinatorClient
from taskpost.agent.errors import AuthError, CoordinatorError, IntegrityError, LeaseLost, WorkerUnknown
from taskpost.protocol import Outcome, TaskCompletion, TaskProgress, WorkerRegister, WorkerType
from tests.agent.conftest import sha256
from tests.agent.live import LiveCoordinator

pytestmark = pytest.mark.anyio


async def test_register_gets_the_coordinators_cadence(
    live: LiveCoordinator, client: CoordinatorClient
) -> None:
    registered = await client.register(
        WorkerRegister(name="a", worker_type=WorkerType.GPU, task_types=["noop"], labels=["x"])
    )
    settings = live.api.coord.settings
    assert registered.cadence.long_poll_s == settings.long_poll_s
    assert registered.cadence.heartbeat_interval_s == settings.heartbeat_interval_s
    assert registered.cadence.lease_s == settings.lease_s
    [worker] = await live.workers()
    assert worker["id"] == registered.worker_id
    assert (worker["name"], worker["worker_type"], worker["task_types"], worker["labels"]) == (
        "a",
        "gpu",
        ["noop"],
        ["x"],
    )


async def test_a_claim_with_nothing_queued_is_an_empty_answer(client: CoordinatorClient) -> None:
    registered = await client.register(WorkerRegister(task_types=["noop"]))
    response = await client.claim(registered.worker_id, max_tasks=2, wait_s=0)
    assert response.tasks == [] and response.acks == [] and response.drain is False


async def test_a_claim_carries_completions_and_hands_out_tasks(
    live: LiveCoordinator, client: CoordinatorClient
) -> None:
    worker_id, task = await live.claim(client, params={"a": 1}, priority="high")
    assert task.params == {"a": 1} and task.attempt == 1 and task.lease_token
    done = TaskCompletion(
        job_id=task.job_id, lease_token=task.lease_token, outcome=Outcome.SUCCEEDED, result={"x": 1}
    )
    response = await client.claim(worker_id, max_tasks=1, wait_s=0, completions=[done])
    [ack] = response.acks
    assert ack.job_id == task.job_id and ack.accepted and ack.state == "completed"
    job = await live.job(task.job_id)
    assert job["state"] == "completed" and job["result"] == {"x": 1}


async def test_a_refused_key_says_which_setting_to_check(live: LiveCoordinator) -> None:
    async with live.client("tp_w_not-a-key-of-this-coordinator") as stranger:
        with pytest.raises(AuthError, match="401") as caught:
            await stranger.register(WorkerRegister(task_types=["noop"]))
    assert "TASKPOST_API_KEY" in str(caught.value)


async def test_a_client_key_may_not_act_as_an_agent(live: LiveCoordinator) -> None:
    async with live.client(live.api.keys["client"]) as wrong_role:
        with pytest.raises(AuthError, match="403"):
            await wrong_role.register(WorkerRegister(task_types=["noop"]))


async def test_an_unknown_worker_id_is_worker_unknown(client: CoordinatorClient) -> None:
    with pytest.raises(WorkerUnknown, match="register again"):
        await client.heartbeat("no-such-worker", [])


async def test_a_stale_lease_on_heartbeat_and_completion_is_reported_not_raised(
    live: LiveCoordinator, client: CoordinatorClient
) -> None:
    worker_id, task = await live.claim(client)
    beat = await client.heartbeat(worker_id, [TaskProgress(job_id=task.job_id, lease_token="stale")])
    assert beat.tasks[0].lease_valid is False
    done = TaskCompletion(job_id=task.job_id, lease_token="stale", outcome=Outcome.SUCCEEDED)
    [ack] = (await client.complete(worker_id, [done])).acks
    assert (ack.accepted, ack.code) == (False, "stale_lease")
    assert (await live.job(task.job_id))["state"] == "processing"


async def test_release_requeues_and_deregister_forgets_the_agent(
    live: LiveCoordinator, client: CoordinatorClient
) -> None:
    worker_id, task = await live.claim(client)
    response = await client.release(
        worker_id, [TaskProgress(job_id=task.job_id, lease_token=task.lease_token)], reason="bye"
    )
    assert response.acks[0].accepted
    assert (await live.job(task.job_id))["state"] == "queued"
    await client.deregister(worker_id)
    assert await live.workers() == []
    with pytest.raises(WorkerUnknown):
        await client.heartbeat(worker_id, [])


async def test_download_streams_to_disk_and_checks_sha256(
    live: LiveCoordinator, client: CoordinatorClient, tmp_path: Path
) -> None:
    data = b"hello " * 400_000  # more than one chunk
    ref = await live.upload("a b.wav", data)
    _, task = await live.claim(client, inputs=[ref])
    assert [(i.name, i.size, i.sha256) for i in task.inputs] == [("a b.wav", len(data), sha256(data))]
    dest = tmp_path / "in.wav"
    size = await client.download_input(task.job_id, "a b.wav", task.lease_token, dest, sha256=sha256(data))
    assert size == len(data) and dest.read_bytes() == data


async def test_download_that_does_not_match_its_digest_is_removed(
    live: LiveCoordinator, client: CoordinatorClient, tmp_path: Path
) -> None:
    _, task = await live.claim(client, inputs=[await live.upload("a.txt", b"what the server has")])
    dest = tmp_path / "a.txt"
    with pytest.raises(IntegrityError, match="sha256"):
        await client.download_input(task.job_id, "a.txt", task.lease_token, dest, sha256=sha256(b"other"))
    assert not dest.exists()


async def test_download_with_a_stale_lease_is_lease_lost(
    live: LiveCoordinator, client: CoordinatorClient, tmp_path: Path
) -> None:
    _, task = await live.claim(client, inputs=[await live.upload("a.txt", b"x")])
    with pytest.raises(LeaseLost):
        await client.download_input(task.job_id, "a.txt", "not-the-lease", tmp_path / "a.txt")
    assert not (tmp_path / "a.txt").exists()


@pytest.mark.parametrize(
    ("job", "name", "code"),
    [("no-such-job", "a.txt", "job_not_found"), (None, "missing.txt", "file_not_found")],
)
async def test_other_refusals_are_coordinator_errors_with_the_servers_code(
    live: LiveCoordinator,
    client: CoordinatorClient,
    tmp_path: Path,
    job: str | None,
    name: str,
    code: str,
) -> None:
    _, task = await live.claim(client, inputs=[await live.upload("a.txt", b"x")])
    with pytest.raises(CoordinatorError) as caught:
        await client.download_input(job or task.job_id, name, task.lease_token, tmp_path / "x")
    assert (caught.value.status, caught.value.code) == (404, code)


async def test_upload_streams_the_file_and_the_job_keeps_it(
    live: LiveCoordinator, client: CoordinatorClient, tmp_path: Path
) -> None:
    data = b"\x00\x01" * 700_000  # more than one chunk
    path = tmp_path / "out.bin"
    path.write_bytes(data)
    worker_id, task = await live.claim(client)
    info = await client.upload_output(task.job_id, "out.bin", task.lease_token, path)
    assert (info.name, info.size, info.sha256) == ("out.bin", len(data), sha256(data))
    done = TaskCompletion(job_id=task.job_id, lease_token=task.lease_token, outcome=Outcome.SUCCEEDED)
    assert (await client.complete(worker_id, [done])).acks[0].accepted
    assert await live.output(task.job_id, "out.bin") == data


async def test_upload_after_the_lease_expired_is_lease_lost(
    live: LiveCoordinator, client: CoordinatorClient, tmp_path: Path
) -> None:
    path = tmp_path / "late.txt"
    path.write_text("late")
    _, task = await live.claim(client)
    assert await live.expire_leases() == 1
    with pytest.raises(LeaseLost):
        await client.upload_output(task.job_id, "late.txt", task.lease_token, path)
