"""Retention and purges: finished jobs go with their events and blobs; nothing live is touched."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text, update

from taskpost.protocol import API_PREFIX
from taskpost.server.services import retention
from taskpost.server.services.jobs import JOBS
from taskpost.server.settings import Settings
from tests.server.blobs_helpers import blob_files, collect, refs, upload_id
from tests.server.conftest import Api, ManualClock, eventually, make_settings, running_api
from tests.server.retention_helpers import Finisher, event_count, job_ids

pytestmark = pytest.mark.anyio

KEEP_COMPLETED_S = 100.0
KEEP_DEAD_S = 200.0
BATCH = 3


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    """Short retentions (cancelled jobs kept forever) and small batches, on each database."""
    return make_settings(tmp_path / "data").model_copy(
        update={
            "database_url": database_url,
            "retain_completed_s": KEEP_COMPLETED_S,
            "retain_dead_s": KEEP_DEAD_S,
            "retain_cancelled_s": 0.0,
            "retention_batch_size": BATCH,
        }
    )


async def _purge(api: Api, expect: int = 200, headers: dict[str, str] | None = None, **body: Any) -> Any:
    namespace = body.pop("namespace", None)
    response = await api.http.post(
        f"{API_PREFIX}/admin/purge",
        json=body,
        params={"namespace": namespace} if namespace else None,
        headers=headers or api.auth("admin"),
    )
    assert response.status_code == expect, response.text
    return response.json()


async def test_finished_jobs_go_once_past_their_states_retention(api: Api) -> None:
    finisher = Finisher(api)
    completed = await finisher.finish(
        "completed", output=b"result", inputs=[{"name": "in", "upload_id": await upload_id(api, b"in")}]
    )
    dead = await finisher.finish("dead")
    cancelled = await finisher.finish("cancelled")
    assert await event_count(api, dead["id"]) > 0 and await event_count(api, cancelled["id"]) > 0
    assert len(blob_files(api)) == 2
    api.clock.advance(KEEP_COMPLETED_S - 1)
    assert await retention.apply_retention(api.coord) == 0
    api.clock.advance(1)
    assert await retention.apply_retention(api.coord) == 1
    assert await job_ids(api) == {dead["id"], cancelled["id"]}
    response = await api.http.get(f"{API_PREFIX}/jobs/{completed['id']}", headers=api.auth("client"))
    assert response.status_code == 404
    # The output was the completed job's alone: its blob goes. The input's upload still holds its own.
    assert (await collect(api)).blobs == 1
    assert len(blob_files(api)) == 1
    api.clock.advance(KEEP_DEAD_S - KEEP_COMPLETED_S)
    assert await retention.apply_retention(api.coord) == 1
    assert await job_ids(api) == {cancelled["id"]}
    assert await event_count(api, dead["id"]) == 0
    api.clock.advance(10 * 365 * 86400)  # retain_cancelled_s = 0: kept forever
    assert await retention.apply_retention(api.coord) == 0
    assert await job_ids(api) == {cancelled["id"]}
    assert (await collect(api)).uploads == 1
    assert blob_files(api) == set() and await refs(api) == {}


async def test_live_jobs_and_their_inputs_are_never_deleted(api: Api) -> None:
    finisher = Finisher(api)
    shared = await upload_id(api, b"shared input")
    inputs = [{"name": "in", "upload_id": shared}]
    finished = await finisher.finish("dead", inputs=inputs)
    worker = await finisher.worker()
    await api.submit(inputs=inputs, max_attempts=3)
    [failing] = await api.claim(worker)
    assert (await api.complete(worker, failing, outcome="failed", error_message="retry me"))["accepted"]
    await api.submit(inputs=inputs)
    [running] = await api.claim(worker)
    queued = await api.submit(inputs=inputs)
    live = {failing["job_id"]: "failed", running["job_id"]: "processing", queued["id"]: "queued"}
    async with api.coord.db.write() as conn:  # as if each had ended once before (then requeued)
        await conn.execute(update(JOBS).where(JOBS.c.id.in_(live)).values(ended_at=api.clock() - 1))
    api.clock.advance(365 * 86400)  # past every retention and the upload's grace period
    assert await retention.apply_retention(api.coord) == 1
    purged = await _purge(api, states=["completed", "dead", "cancelled"], older_than_s=0)
    assert purged["jobs"] == {"completed": 0, "dead": 0, "cancelled": 0}
    assert (await collect(api)).uploads == 1
    assert await job_ids(api) == set(live)
    for job_id, state in live.items():
        assert (await api.job(job_id))["state"] == state
    [key] = blob_files(api)
    assert await refs(api) == {key: 3}
    [task] = await api.claim(worker)
    assert task["job_id"] == queued["id"]
    got = await api.http.get(
        f"{API_PREFIX}/tasks/{task['job_id']}/inputs/in",
        headers={**api.auth("worker"), "X-Lease-Token": task["lease_token"]},
    )
    assert got.status_code == 200 and got.content == b"shared input"
    assert finished["id"] not in await job_ids(api)


async def test_a_job_whose_files_cannot_be_read_goes_and_does_not_stop_the_batch(
    api: Api, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    if not database_url.startswith("sqlite"):
        pytest.skip("PostgreSQL refuses to store a json column that is not JSON")
    finisher = Finisher(api)
    corrupt = await finisher.finish("dead", inputs=[{"name": "in", "upload_id": await upload_id(api, b"in")}])
    healthy = await finisher.finish("dead")
    async with api.coord.db.write() as conn:
        await conn.execute(text("UPDATE jobs SET inputs = '[not json' WHERE id = :id"), {"id": corrupt["id"]})
    api.clock.advance(KEEP_DEAD_S)
    assert await retention.apply_retention(api.coord) == 2
    assert not await job_ids(api) & {corrupt["id"], healthy["id"]}
    assert f"job {corrupt['id']} names files in a column that is not readable" in caplog.text
    [key] = blob_files(api)
    assert await refs(api) == {key: 2}  # its upload's, and the one it can no longer give back


async def test_retention_deletes_in_batches_and_a_pass_in_a_bounded_number(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    finisher = Finisher(api)
    dead = [await finisher.finish("dead") for _ in range(8)]
    api.clock.advance(KEEP_DEAD_S)
    batches: list[int] = []
    delete_batch = retention._delete_batch

    async def counted(*args: Any) -> int:
        deleted = await delete_batch(*args)
        batches.append(deleted)
        return deleted

    monkeypatch.setattr(retention, "_delete_batch", counted)
    monkeypatch.setattr(retention, "BATCHES_PER_PASS", 2)
    assert await retention.apply_retention(api.coord) == 2 * BATCH
    assert batches == [BATCH, BATCH]
    assert await retention.apply_retention(api.coord) == 2
    assert batches == [BATCH, BATCH, 2]
    assert await retention.apply_retention(api.coord) == 0
    assert batches == [BATCH, BATCH, 2]  # nothing to delete: no write at all
    assert not await job_ids(api) & {job["id"] for job in dead}


async def test_the_reaper_applies_retention_on_its_own(settings: Settings, clock: ManualClock) -> None:
    async with running_api(settings.model_copy(update={"reaper_interval_s": 0.01}), clock) as api:
        dead = await Finisher(api).finish("dead")
        api.clock.advance(KEEP_DEAD_S)

        async def gone() -> bool:
            return dead["id"] not in await job_ids(api)

        await eventually(gone, "the reaper to delete the dead job")


async def test_a_purge_deletes_what_it_selects_and_a_dry_run_only_counts(api: Api) -> None:
    finisher = Finisher(api)
    acme = await api.new_key("client", "acme")
    noop = [await finisher.finish("dead") for _ in range(2)]
    resize = await finisher.finish("dead", type="resize")
    completed = await finisher.finish("completed")
    other = await finisher.finish("dead", headers=acme)
    api.clock.advance(3600)
    recent = await finisher.finish("dead")
    preview = await _purge(api, states=["dead", "dead"], older_than_s=60, dry_run=True)
    assert preview["jobs"] == {"dead": 4} and preview["dry_run"] and not preview["more"]
    assert len(await job_ids(api)) == 6
    by_type = await _purge(api, states=["dead"], older_than_s=60, type="resize")
    assert by_type["jobs"] == {"dead": 1} and not by_type["dry_run"]
    assert resize["id"] not in await job_ids(api)
    in_acme = await _purge(api, states=["dead"], older_than_s=60, namespace="acme")
    assert in_acme["jobs"] == {"dead": 1}
    assert other["id"] not in await job_ids(api)
    assert (await _purge(api, states=["dead"], older_than_s=7200))["jobs"] == {"dead": 0}
    rest = await _purge(api, states=["dead", "completed"], older_than_s=60)
    assert rest["jobs"] == {"dead": 2, "completed": 1}
    assert await job_ids(api) == {recent["id"]}
    assert {noop[0]["id"], completed["id"]}.isdisjoint(await job_ids(api))


async def test_a_purge_stops_at_its_limit_and_says_there_is_more(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    finisher = Finisher(api)
    for _ in range(BATCH * 2 + 2):
        await finisher.finish("cancelled")
    monkeypatch.setattr(retention, "BATCHES_PER_REQUEST", 2)
    first = await _purge(api, states=["cancelled"], older_than_s=0)
    assert first["jobs"] == {"cancelled": BATCH * 2} and first["more"]
    second = await _purge(api, states=["cancelled"], older_than_s=0)
    assert second["jobs"] == {"cancelled": 2} and not second["more"]
    assert await job_ids(api) == set()


async def test_only_admin_keys_may_purge(api: Api) -> None:
    dead = await Finisher(api).finish("dead")
    body = {"states": ["dead"], "older_than_s": 0}
    for role in ("client", "worker"):
        refused = await _purge(api, expect=403, headers=api.auth(role), **body)
        assert refused["error"]["code"] == "forbidden"
    own = await _purge(api, expect=403, headers=api.auth("client"), namespace="default", **body)
    assert own["error"]["code"] == "forbidden"
    assert dead["id"] in await job_ids(api)
    assert (await _purge(api, **body))["jobs"] == {"dead": 1}


@pytest.mark.parametrize(
    "body",
    [
        {"states": ["queued"], "older_than_s": 0},
        {"states": ["processing"], "older_than_s": 0},
        {"states": [], "older_than_s": 0},
        {"states": ["dead"], "older_than_s": -1},
        {"states": ["dead"], "older_than_s": "7d"},
        {"states": ["dead"]},
        {"states": ["dead"], "older_than_s": 0, "type": "Not A Type"},
        {"states": ["dead"], "older_than_s": 0, "namespaces": ["x"]},
    ],
)
async def test_a_purge_of_live_states_or_a_bad_age_is_refused(api: Api, body: dict[str, Any]) -> None:
    dead = await Finisher(api).finish("dead")
    refused = await _purge(api, expect=422, **body)
    assert refused["error"]["code"] == "invalid_params"
    assert dead["id"] in await job_ids(api)
