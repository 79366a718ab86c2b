"""``taskpost.client.AsyncClient`` against a live coordinator process and a noop agent."""

from __future__ import annotations

from pathlib import Path

import pytest

from taskpost.client import AsyncClient, JobFailed, JobNotFound, job_spec
from taskpost.protocol import JobPublic, JobState
from tests.e2e.conftest import Cluster

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]


async def test_submit_with_a_file_wait_and_download_outputs(
    live: Cluster, client_key: str, tmp_path: Path
) -> None:
    async with AsyncClient(live.url, api_key=client_key) as client:
        params = {"outputs": {"report.txt": "all good"}, "echo_inputs": True}
        submitted = await client.submit("noop", params, files={"speech.wav": b"RIFF-not-really"})
        assert [f.name for f in submitted.job.inputs] == ["speech.wav"]
        seen: list[JobPublic] = []
        job = await client.wait(submitted.job.id, timeout=60, on_update=seen.append)
        assert job.state is JobState.COMPLETED
        assert seen[0].id == job.id and seen[-1].state is JobState.COMPLETED
        [saved] = await client.download_outputs(job.id, tmp_path / "out")
        assert saved == tmp_path / "out" / "report.txt"
        assert saved.read_text() == "all good"
        assert not (tmp_path / "out" / "report.txt.part").exists()


async def test_result_of_a_dead_job_raises_job_failed(live: Cluster, client_key: str) -> None:
    async with AsyncClient(live.url, api_key=client_key) as client:
        submitted = await client.submit("noop", {"fail": "boom", "fail_retryable": False})
        with pytest.raises(JobFailed) as failed:
            await client.result(submitted.job.id, timeout=60)
        assert failed.value.job.state is JobState.DEAD
        assert "boom" in failed.value.message


async def test_list_batch_and_errors(live: Cluster, client_key: str) -> None:
    async with AsyncClient(live.url, api_key=client_key) as client:
        batch = await client.submit_many([job_spec("noop", {"n": n}) for n in range(3)])
        ids = {entry.job.id for entry in batch.jobs}
        assert {job.id async for job in client.list(type="noop", page_size=2)} == ids
        with pytest.raises(JobNotFound):
            await client.get("no-such-job")
        stats = await client.stats()
        assert sum(stats.totals.values()) >= 3
