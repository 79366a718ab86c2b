"""``GET /api/v1/jobs/{id}?wait_s=``: held until the job changes state, woken by the coordinator's
job-changes notifier (not the one that wakes held claims)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from taskpost.protocol import API_PREFIX
from tests.server.conftest import Api, ManualClock, make_settings, running_api

pytestmark = pytest.mark.anyio


@pytest.fixture
async def patient_api(tmp_path: Path, database_url: str, clock: ManualClock) -> AsyncIterator[Api]:
    """A coordinator whose long poll (60 s) is far longer than any deadline in these tests."""
    settings = make_settings(tmp_path / "data", database_url).model_copy(update={"long_poll_s": 60.0})
    async with running_api(settings, clock) as api:
        yield api


def _spy_on_waits(api: Api, monkeypatch: pytest.MonkeyPatch) -> asyncio.Event:
    """An event set when a request starts waiting for a job to change."""
    waiting = asyncio.Event()
    wait = api.coord.job_changes.wait

    async def noted_wait(seen_version: int, timeout_s: float) -> None:
        task = asyncio.current_task()
        # The coordinator's own loops (the webhook dispatcher) wait on job changes too.
        if task is None or not task.get_name().startswith("taskpost-"):
            waiting.set()
        await wait(seen_version, timeout_s)

    monkeypatch.setattr(api.coord.job_changes, "wait", noted_wait)
    return waiting


async def _get(api: Api, job_id: str, wait_s: float) -> dict[str, Any]:
    response = await api.http.get(
        f"{API_PREFIX}/jobs/{job_id}", params={"wait_s": wait_s}, headers=api.auth("client")
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_a_held_get_answers_when_the_job_completes(
    patient_api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    api = patient_api
    worker = await api.register()
    job = await api.submit(params={"n": 1})
    [task] = await api.claim(worker)
    waiting = _spy_on_waits(api, monkeypatch)
    held = asyncio.create_task(_get(api, job["id"], wait_s=60))
    await asyncio.wait_for(waiting.wait(), timeout=10)
    assert not held.done(), "a running job's GET with wait_s must hold, not answer at once"

    await api.complete(worker, task, result={"n": 1})
    # Without a wake-up on completion the hold would last 60 s; the deadline is well below.
    answered = await asyncio.wait_for(held, timeout=30)
    assert answered["state"] == "completed"
    assert answered["result"] == {"n": 1}


async def test_a_held_get_answers_when_the_job_is_claimed(
    patient_api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    api = patient_api
    worker = await api.register()
    job = await api.submit()
    waiting = _spy_on_waits(api, monkeypatch)
    held = asyncio.create_task(_get(api, job["id"], wait_s=60))
    await asyncio.wait_for(waiting.wait(), timeout=10)
    await api.claim(worker)
    answered = await asyncio.wait_for(held, timeout=30)
    assert answered["state"] == "processing"


async def test_a_held_get_answers_when_the_job_is_cancelled(
    patient_api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    api = patient_api
    job = await api.submit()
    waiting = _spy_on_waits(api, monkeypatch)
    held = asyncio.create_task(_get(api, job["id"], wait_s=60))
    await asyncio.wait_for(waiting.wait(), timeout=10)
    cancel = await api.http.post(f"{API_PREFIX}/jobs/{job['id']}/cancel", headers=api.auth("client"))
    assert cancel.status_code == 200, cancel.text
    answered = await asyncio.wait_for(held, timeout=30)
    assert answered["state"] == "cancelled"


async def test_a_completion_does_not_wake_held_claims(api: Api) -> None:
    """Ending a job makes no work claimable: held claims must sleep on (no herd per completion)."""
    worker = await api.register()
    await api.submit()
    [task] = await api.claim(worker)
    work_version = api.coord.notifier.version
    changes_version = api.coord.job_changes.version
    await api.complete(worker, task, result={})
    assert api.coord.notifier.version == work_version
    assert api.coord.job_changes.version > changes_version


async def test_an_ended_job_is_answered_at_once(patient_api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    api = patient_api
    job = await api.submit()
    cancel = await api.http.post(f"{API_PREFIX}/jobs/{job['id']}/cancel", headers=api.auth("client"))
    assert cancel.status_code == 200, cancel.text
    waiting = _spy_on_waits(api, monkeypatch)
    answered = await asyncio.wait_for(_get(api, job["id"], wait_s=60), timeout=30)
    assert answered["state"] == "cancelled"
    assert not waiting.is_set()


async def test_the_hold_ends_after_wait_s_with_the_job_unchanged(api: Api) -> None:
    job = await api.submit()
    answered = await _get(api, job["id"], wait_s=0.2)
    assert answered["state"] == "queued"


async def test_wait_s_is_capped_at_the_long_poll_setting(api: Api) -> None:
    # long_poll_s is 5 in the test settings: 3600 is accepted and held for 5 s at most.
    job = await api.submit()
    answered = await asyncio.wait_for(_get(api, job["id"], wait_s=3600), timeout=60)
    assert answered["id"] == job["id"]


async def test_a_negative_wait_s_is_refused(api: Api) -> None:
    job = await api.submit()
    response = await api.http.get(
        f"{API_PREFIX}/jobs/{job['id']}", params={"wait_s": -1}, headers=api.auth("client")
    )
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_params"


async def test_a_move_made_before_the_hold_is_answered_at_once_given_the_state_seen(
    patient_api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A client that saw ``queued`` asks again after the claim: it must not wait for the next move."""
    api = patient_api
    worker = await api.register()
    job = await api.submit()
    await api.claim(worker)
    waiting = _spy_on_waits(api, monkeypatch)
    response = await asyncio.wait_for(
        api.http.get(
            f"{API_PREFIX}/jobs/{job['id']}",
            params={"wait_s": 60, "seen_state": "queued"},
            headers=api.auth("client"),
        ),
        timeout=30,
    )
    assert response.status_code == 200, response.text
    assert response.json()["state"] == "processing"
    assert not waiting.is_set(), "the job had moved from the state seen: nothing to wait for"
    bad = await api.http.get(
        f"{API_PREFIX}/jobs/{job['id']}",
        params={"wait_s": 1, "seen_state": "asleep"},
        headers=api.auth("client"),
    )
    assert bad.status_code == 422
