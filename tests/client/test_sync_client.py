"""``taskpost.client.Client`` against a live coordinator process and a noop agent."""

from __future__ import annotations

import pytest

from taskpost.client import Client, InvalidState, JobNotFound, Unauthorized, UnknownJobType, job_spec
from taskpost.protocol import JobState
from tests.client.proxy import AnswerDroppingProxy
from tests.e2e.conftest import Cluster

pytestmark = pytest.mark.e2e


def test_submit_wait_and_result(live: Cluster, client_key: str) -> None:
    with Client(live.url, api_key=client_key) as client:
        submitted = client.submit("noop", {"echo": 7}, priority="high", max_attempts=2, labels=[])
        assert submitted.created
        assert submitted.job.idempotency_key, "every submit carries an idempotency key"
        job = client.wait(submitted.job.id, timeout=60)
        assert job.state is JobState.COMPLETED
        assert client.result(job.id) == job.result
        assert job.result is not None


def test_list_pages_through_every_job_and_stats_count_them(live: Cluster, client_key: str) -> None:
    with Client(live.url, api_key=client_key) as client:
        batch = client.submit_many([job_spec("noop", {"n": n}) for n in range(5)])
        ids = {entry.job.id for entry in batch.jobs}
        assert len(ids) == 5
        listed = [job.id for job in client.list(type="noop", page_size=2)]
        assert set(listed) == ids and len(listed) == 5
        for job_id in ids:
            client.wait(job_id, timeout=60)
        assert {job.id for job in client.list(state="completed", page_size=2)} == ids
        assert client.stats().totals.get("completed") == 5


def test_errors_carry_the_servers_code(live: Cluster, client_key: str) -> None:
    with Client(live.url, api_key=client_key) as client:
        with pytest.raises(JobNotFound) as missing:
            client.get("no-such-job")
        assert missing.value.code == "job_not_found" and missing.value.status == 404
        with pytest.raises(UnknownJobType):
            client.submit("never-registered")
        job = client.wait(client.submit("noop").job.id, timeout=60)
        with pytest.raises(InvalidState) as ended:
            client.cancel(job.id)
        assert ended.value.code == "invalid_state" and ended.value.status == 409
        with pytest.raises(InvalidState):
            client.requeue(job.id)
    with Client(live.url, api_key="wrong") as stranger, pytest.raises(Unauthorized):
        stranger.stats()


def test_a_submit_whose_answer_was_lost_creates_exactly_one_job(live: Cluster, client_key: str) -> None:
    with (
        AnswerDroppingProxy(live.port, drops=1) as proxy,
        Client(proxy.url, api_key=client_key, first_backoff_s=0.05) as client,
    ):
        submitted = client.submit("noop", {"once": True})
        assert proxy.dropped == 1, "the first answer should have been lost on the way"
        assert not submitted.created, "the retry should find the job the lost answer was about"
    jobs = live.http.get("/jobs", params={"type": "noop"}).json()["jobs"]
    assert [job["id"] for job in jobs] == [submitted.job.id]
