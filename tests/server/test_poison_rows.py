"""Defence in depth: a stored row that cannot be sent never breaks a page or a claim of others.

Earlier versions could store text that is not valid UTF-8 (a lone surrogate): it is written here
directly with SQL, as the JSON escape ``\\ud800`` that Python's json module accepts.
"""

from __future__ import annotations

import pytest
from sqlalchemy import text

from taskpost.protocol import API_PREFIX
from taskpost.server.services import claims
from taskpost.server.services.job_rows import UNREADABLE
from tests.server.conftest import Api

pytestmark = pytest.mark.anyio

LONE_SURROGATE_JSON = '{"text": "bad \\ud800 text"}'


async def _store(api: Api, job_id: str, column: str, raw_json: str) -> None:
    async with api.coord.db.write() as conn:
        await conn.execute(
            text(f"UPDATE jobs SET {column} = :value WHERE id = :id"), {"value": raw_json, "id": job_id}
        )


@pytest.mark.parametrize("cursor", ["9223372036854775808", "¹", "١٢", "-1", "1.5", " 1", "0x10", ""])
async def test_a_cursor_that_next_cursor_cannot_give_is_a_422(api: Api, cursor: str) -> None:
    response = await api.http.get(f"{API_PREFIX}/jobs", params={"cursor": cursor}, headers=api.auth("client"))
    assert response.status_code == 422, response.text
    assert [e["field"] for e in response.json()["error"]["details"]["errors"]] == ["cursor"]


async def test_the_largest_cursor_is_accepted(api: Api) -> None:
    job = await api.submit()
    page = await api.http.get(
        f"{API_PREFIX}/jobs", params={"cursor": str(2**63 - 1)}, headers=api.auth("client")
    )
    assert page.status_code == 200 and [j["id"] for j in page.json()["jobs"]] == [job["id"]]


@pytest.mark.parametrize("column", ["params", "meta", "result"])
async def test_an_unsendable_row_is_marked_and_the_page_still_answers(api: Api, column: str) -> None:
    healthy = await api.submit(params={"ok": 1})
    bad = await api.submit(params={"ok": 2})
    await _store(api, bad["id"], column, LONE_SURROGATE_JSON)
    response = await api.http.get(f"{API_PREFIX}/jobs", headers=api.auth("client"))
    assert response.status_code == 200, response.text
    by_id = {job["id"]: job for job in response.json()["jobs"]}
    assert by_id[healthy["id"]]["params"] == {"ok": 1}
    shown = by_id[bad["id"]][column]
    assert UNREADABLE in (shown if isinstance(shown, str) else shown.values())
    alone = await api.http.get(f"{API_PREFIX}/jobs/{bad['id']}", headers=api.auth("client"))
    assert alone.status_code == 200 and alone.json()["id"] == bad["id"]


@pytest.mark.parametrize("bad_json", [LONE_SURROGATE_JSON, "{not json"])
async def test_a_corrupt_row_is_set_dead_and_the_others_are_handed_out(api: Api, bad_json: str) -> None:
    if bad_json == "{not json" and api.coord.db.dialect.name == "postgresql":
        pytest.skip("PostgreSQL's json type refuses to store text that is not JSON")
    first = await api.submit(params={"n": 1})
    bad = await api.submit(params={"n": 2})
    last = await api.submit(params={"n": 3})
    await _store(api, bad["id"], "params", bad_json)
    worker = await api.register()
    tasks = await api.claim(worker, max_tasks=3)
    assert [t["job_id"] for t in tasks] == [first["id"], last["id"]]
    dead = await api.job(bad["id"])
    assert dead["state"] == "dead" and dead["error"]["kind"] == "corrupt_row"
    assert not dead["error"]["retryable"] and dead["worker_id"] is None
    assert [e["kind"] for e in await api.events(bad["id"])] == ["corrupt_row"]
    for task in tasks:
        assert (await api.complete(worker, task))["accepted"]


async def test_a_claim_that_meets_only_corrupt_rows_goes_on_to_healthy_ones(api: Api) -> None:
    bad = await api.submit(priority="high")
    healthy = await api.submit()
    await _store(api, bad["id"], "meta", LONE_SURROGATE_JSON)
    worker = await api.register()
    assert [t["job_id"] for t in await api.claim(worker, max_tasks=1)] == [healthy["id"]]
    assert (await api.job(bad["id"]))["state"] == "dead"


async def test_a_claim_that_fails_after_choosing_rows_leaves_them_queued(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = await api.submit()
    worker = await api.register()

    def broken(row: object, lease_expires_at: float) -> None:
        raise RuntimeError("injected failure while building the task")

    monkeypatch.setattr(claims, "_sendable_task", broken)
    with pytest.raises(RuntimeError, match="injected failure"):
        await api.claim(worker)
    after = await api.job(job["id"])
    assert after["state"] == "queued" and after["attempts"] == 0 and after["worker_id"] is None
