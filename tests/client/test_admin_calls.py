"""The client's key, agent and bulk calls (``create_key`` with limits, ``rotate_key``,
``drain_worker``/``undrain_worker``, ``requeue_jobs``, ``empty_queue``, ``list_page``), sync and
async, against a live coordinator process with a noop agent."""

from __future__ import annotations

import pytest

from taskpost.client import AsyncClient, Client, InvalidParams, Unauthorized
from taskpost.protocol import JobState
from tests.e2e.conftest import ADMIN_KEY, Cluster

pytestmark = [pytest.mark.e2e]


def test_keys_with_expiry_and_task_types_rotate_and_keep_their_id(live: Cluster) -> None:
    with Client(live.url, api_key=ADMIN_KEY) as admin:
        worker = admin.create_key("worker", "w", ["a"], expires_in_s=3600, task_types=["noop"])
        assert worker.info.task_types == ["noop"] and worker.info.namespaces == ["a"]
        assert worker.info.expires_at is not None
        client_key = admin.create_key("client", "c")
        rotated = admin.rotate_key(client_key.info.prefix, grace_s=0)
        assert rotated.info.id == client_key.info.id and rotated.key != client_key.key
        with Client(live.url, api_key=rotated.key) as fresh:
            assert fresh.list_page().jobs == []
        with Client(live.url, api_key=client_key.key, retries=0) as stale, pytest.raises(Unauthorized):
            stale.list_page()
        kept = admin.rotate_key(client_key.info.id)  # the coordinator's grace: a day
        assert kept.info.previous_expires_at is not None
        with Client(live.url, api_key=rotated.key) as previous:
            assert previous.list_page().jobs == []
        with pytest.raises(InvalidParams, match="task_types"):
            admin.create_key("client", task_types=["noop"])  # checked before it is sent


def test_drain_requeue_and_empty_in_bulk(live: Cluster) -> None:
    with Client(live.url, api_key=ADMIN_KEY) as admin:
        dead = [admin.submit("noop", {"fail": "x", "fail_retryable": False}).job.id for _ in range(3)]
        for job_id in dead:
            assert admin.wait(job_id, timeout=60).state is JobState.DEAD
        assert admin.requeue_jobs(["dead"], dry_run=True).count == 3
        assert {admin.get(job_id).state for job_id in dead} == {JobState.DEAD}
        assert admin.requeue_jobs(["dead"], "noop").count == 3
        for job_id in dead:
            assert admin.wait(job_id, timeout=60).state is JobState.DEAD

        [worker] = admin.workers()
        assert admin.drain_worker(worker.id).draining is True
        queued = [admin.submit("noop").job.id for _ in range(2)]
        later = admin.submit("noop", delay_s=3600).job.id
        assert admin.empty_queue("noop", dry_run=True).count == 2
        emptied = admin.empty_queue("noop", include_scheduled=True)
        assert (emptied.count, emptied.more) == (3, False)
        assert {admin.get(job_id).state for job_id in [*queued, later]} == {JobState.CANCELLED}
        assert admin.undrain_worker(worker.id).draining is False

        first = admin.list_page(state="cancelled", limit=2)
        assert len(first.jobs) == 2 and first.next_cursor is not None
        rest = admin.list_page(state="cancelled", limit=2, cursor=first.next_cursor)
        assert {j.id for j in [*first.jobs, *rest.jobs]} == {*queued, later} and rest.next_cursor is None


@pytest.mark.anyio
async def test_the_async_client_has_the_same_calls(live: Cluster) -> None:
    async with AsyncClient(live.url, api_key=ADMIN_KEY) as admin:
        made = await admin.create_key("worker", task_types=["noop"], expires_in_s=60.0)
        rotated = await admin.rotate_key(made.info.id, grace_s=30)
        assert rotated.info.task_types == ["noop"] and rotated.info.previous_expires_at is not None
        [worker] = await admin.workers()
        assert (await admin.drain_worker(worker.id)).draining is True
        job = (await admin.submit("noop")).job
        assert (await admin.empty_queue("noop")).count == 1
        assert (await admin.get(job.id)).state is JobState.CANCELLED
        assert (await admin.requeue_jobs(["cancelled"], dry_run=True)).count == 1
        assert (await admin.undrain_worker(worker.id)).draining is False
        assert (await admin.requeue_jobs(["cancelled", "dead"])).count == 1
        page = await admin.list_page(type="noop")
        assert [j.id for j in page.jobs] == [job.id]
