"""Progress reported by heartbeats belongs to one attempt: it does not outlive that attempt."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from taskpost.protocol import API_PREFIX
from tests.server.conftest import Api

pytestmark = pytest.mark.anyio

Ending = Callable[[Api, str, dict[str, Any]], Awaitable[None]]


async def _succeed(api: Api, worker: str, task: dict[str, Any]) -> None:
    await api.complete(worker, task, result={"ok": True})


async def _fail_retryable(api: Api, worker: str, task: dict[str, Any]) -> None:
    await api.complete(worker, task, outcome="failed", error_message="flaky", retry_delay_s=60)


async def _fail_for_good(api: Api, worker: str, task: dict[str, Any]) -> None:
    await api.complete(worker, task, outcome="failed", error_message="broken", retryable=False)


async def _cancel(api: Api, worker: str, task: dict[str, Any]) -> None:
    await api.complete(worker, task, outcome="cancelled")


async def _lose_the_lease(api: Api, worker: str, task: dict[str, Any]) -> None:
    api.clock.advance(31)  # past the 30 s lease without a heartbeat
    assert await api.reap() == 1


async def _release(api: Api, worker: str, task: dict[str, Any]) -> None:
    body = {"tasks": [{"job_id": task["job_id"], "lease_token": task["lease_token"]}]}
    response = await api.http.post(
        f"{API_PREFIX}/workers/{worker}/release", json=body, headers=api.auth("worker")
    )
    assert response.status_code == 200, response.text


ENDINGS: dict[str, tuple[Ending, str, float | None]] = {
    "completed": (_succeed, "completed", 1.0),
    "retry later": (_fail_retryable, "failed", None),
    "dead": (_fail_for_good, "dead", 0.9),
    "cancelled": (_cancel, "cancelled", 0.9),
    "lease lost": (_lose_the_lease, "queued", None),
    "released": (_release, "queued", None),
}


@pytest.mark.parametrize("ending", ENDINGS)
async def test_the_end_of_an_attempt_clears_its_progress_message(api: Api, ending: str) -> None:
    end, state, progress = ENDINGS[ending]
    job = await api.submit(max_attempts=3)
    worker = await api.register()
    [task] = await api.claim(worker)
    await api.heartbeat(worker, task, progress=0.9, message="sleeping, 0.9s left")
    running = await api.job(job["id"])
    assert (running["progress"], running["progress_message"]) == (0.9, "sleeping, 0.9s left")

    await end(api, worker, task)

    after = await api.job(job["id"])
    assert after["state"] == state
    assert after["progress_message"] is None
    assert after["progress"] == progress


async def test_a_requeued_job_starts_without_the_old_progress(api: Api) -> None:
    job = await api.submit(max_attempts=1)
    worker = await api.register()
    [task] = await api.claim(worker)
    await api.heartbeat(worker, task, progress=0.4, message="page 2 of 5")
    await _fail_for_good(api, worker, task)
    response = await api.http.post(f"{API_PREFIX}/jobs/{job['id']}/requeue", headers=api.auth("admin"))
    assert response.status_code == 200, response.text
    requeued = response.json()
    assert requeued["state"] == "queued"
    assert (requeued["progress"], requeued["progress_message"]) == (None, None)
