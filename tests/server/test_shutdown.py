"""A stopping coordinator (its notifier closed) answers claims at once and hands out nothing."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from taskpost.protocol import API_PREFIX
from taskpost.server.settings import Settings
from tests.server.conftest import Api, HoldSeen

pytestmark = pytest.mark.anyio


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # A hold far longer than the test's patience: a claim that waits it out fails the test.
    return settings.model_copy(update={"long_poll_s": 60})


async def _claim(api: Api, worker: str, **body: object) -> httpx.Response:
    return await api.http.post(
        f"{API_PREFIX}/workers/{worker}/claim", json={"max_tasks": 1, **body}, headers=api.auth("worker")
    )


async def test_a_held_claim_is_answered_204_when_the_coordinator_stops(api: Api, hold_seen: HoldSeen) -> None:
    worker = await api.register()
    held = asyncio.create_task(_claim(api, worker, wait_s=60))
    await asyncio.wait_for(hold_seen.seen.wait(), timeout=10)
    assert not held.done()
    api.coord.notifier.close()
    response = await asyncio.wait_for(held, timeout=10)
    assert response.status_code == 204, response.text


async def test_claims_after_the_close_hand_out_nothing_but_still_take_results(api: Api) -> None:
    worker = await api.register()
    running = await api.submit()
    [task] = await api.claim(worker)
    api.coord.notifier.close()

    queued = await api.submit()
    response = await asyncio.wait_for(_claim(api, worker, wait_s=60), timeout=10)
    assert response.status_code == 204, response.text
    assert (await api.job(queued["id"]))["state"] == "queued"

    completion = {"job_id": task["job_id"], "lease_token": task["lease_token"], "outcome": "succeeded"}
    response = await asyncio.wait_for(_claim(api, worker, wait_s=60, completions=[completion]), timeout=10)
    assert response.status_code == 200, response.text
    assert response.json()["tasks"] == []
    assert [ack["accepted"] for ack in response.json()["acks"]] == [True]
    assert (await api.job(running["id"]))["state"] == "completed"
    assert (await api.job(queued["id"]))["state"] == "queued"
