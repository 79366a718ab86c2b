"""API keys over their life: expiry, rotation with a grace period, worker keys limited to job
types, and the metrics role's reach (both databases; the clock is moved by hand)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from taskpost.agent.client import AuthError, raise_for_response
from taskpost.protocol import API_PREFIX
from taskpost.server.coordinator import WorkerFacts, WorkerRoute
from taskpost.server.services import claims
from tests.server.conftest import Api

pytestmark = pytest.mark.anyio

KEYS_PATH = f"{API_PREFIX}/keys"
DAY_S = 86400.0


async def _create(api: Api, **body: Any) -> dict[str, Any]:
    response = await api.http.post(KEYS_PATH, json=body, headers=api.auth("admin"))
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def _jobs_status(api: Api, key: str) -> httpx.Response:
    return await api.http.get(f"{API_PREFIX}/jobs", headers=_bearer(key))


async def _listed(api: Api, key_id: str) -> dict[str, Any]:
    response = await api.http.get(KEYS_PATH, headers=api.auth("admin"))
    assert response.status_code == 200, response.text
    found: dict[str, Any] = next(k for k in response.json() if k["id"] == key_id)
    return found


async def _rotate(api: Api, key_id: str, **kwargs: Any) -> httpx.Response:
    return await api.http.post(f"{KEYS_PATH}/{key_id}/rotate", headers=api.auth("admin"), **kwargs)


async def test_an_expired_key_is_refused_with_key_expired_and_a_key_without_expiry_keeps_working(
    api: Api,
) -> None:
    expiring = await _create(api, role="client", expires_in_s=3600.0)
    lasting = await _create(api, role="client")
    assert expiring["info"]["expires_at"] is not None
    assert lasting["info"]["expires_at"] is None
    assert (await _jobs_status(api, expiring["key"])).status_code == 200

    api.clock.advance(3601)
    refused = await _jobs_status(api, expiring["key"])
    assert refused.status_code == 401
    error = refused.json()["error"]
    assert error["code"] == "key_expired"
    assert "expired at" in error["message"] and "rotate" in error["message"]
    assert (await _jobs_status(api, lasting["key"])).status_code == 200
    assert (await _listed(api, expiring["info"]["id"]))["expires_at"] == expiring["info"]["expires_at"]


async def test_after_a_rotation_both_secrets_work_until_the_grace_period_ends(api: Api) -> None:
    old = await _create(api, role="client", namespaces=["a"])
    response = await _rotate(api, old["info"]["id"], json={"grace_s": 600.0})
    assert response.status_code == 201, response.text
    new = response.json()
    assert new["key"] != old["key"] and new["key"].startswith("tp_c_")
    info = new["info"]
    assert info["id"] == old["info"]["id"] and info["namespaces"] == ["a"]
    assert info["prefix"] == new["key"][:12] != old["info"]["prefix"]
    assert info["rotated_at"] is not None and info["previous_expires_at"] is not None
    assert (await _jobs_status(api, old["key"])).status_code == 200
    assert (await _jobs_status(api, new["key"])).status_code == 200

    api.clock.advance(601)
    refused = await _jobs_status(api, old["key"])
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "key_expired"
    assert "rotation" in refused.json()["error"]["message"]
    assert (await _jobs_status(api, new["key"])).status_code == 200
    assert (await _listed(api, info["id"]))["previous_expires_at"] is None


async def test_a_rotation_without_a_body_gives_a_day_of_grace_and_takes_the_prefix(api: Api) -> None:
    old = await _create(api, role="worker")
    response = await _rotate(api, old["info"]["prefix"])
    assert response.status_code == 201, response.text
    new = response.json()
    api.clock.advance(DAY_S - 1)
    assert (await api.http.get(f"{API_PREFIX}/types", headers=_bearer(old["key"]))).status_code == 200
    api.clock.advance(2)
    assert (await api.http.get(f"{API_PREFIX}/types", headers=_bearer(old["key"]))).status_code == 401
    assert (await api.http.get(f"{API_PREFIX}/types", headers=_bearer(new["key"]))).status_code == 200


async def test_a_rotation_with_no_grace_stops_the_old_secret_at_once(api: Api) -> None:
    old = await _create(api, role="client")
    response = await _rotate(api, old["info"]["id"], json={"grace_s": 0.0})
    assert response.status_code == 201, response.text
    assert response.json()["info"]["previous_expires_at"] is None
    assert (await _jobs_status(api, old["key"])).status_code == 401
    assert (await _jobs_status(api, response.json()["key"])).status_code == 200


async def test_rotating_an_expiring_key_gives_it_its_lifetime_again(api: Api) -> None:
    old = await _create(api, role="client", expires_in_s=1000.0)
    api.clock.advance(1500)
    assert (await _jobs_status(api, old["key"])).json()["error"]["code"] == "key_expired"
    response = await _rotate(api, old["info"]["id"], json={"grace_s": 60.0})
    assert response.status_code == 201, response.text
    new = response.json()
    assert new["info"]["previous_expires_at"] is None  # the old secret had expired already
    assert (await _jobs_status(api, old["key"])).status_code == 401
    api.clock.advance(999)
    assert (await _jobs_status(api, new["key"])).status_code == 200
    api.clock.advance(2)
    assert (await _jobs_status(api, new["key"])).json()["error"]["code"] == "key_expired"


async def test_configured_revoked_and_unknown_keys_are_not_rotated(api: Api) -> None:
    keys = (await api.http.get(KEYS_PATH, headers=api.auth("admin"))).json()
    configured = next(k for k in keys if k["prefix"].startswith("cfg_"))
    refused = await _rotate(api, configured["id"])
    assert refused.status_code == 422
    assert "TASKPOST_ADMIN_KEY" in refused.json()["error"]["message"]

    revoked = await _create(api, role="client")
    delete = await api.http.delete(f"{KEYS_PATH}/{revoked['info']['id']}", headers=api.auth("admin"))
    assert delete.status_code == 200, delete.text
    answer = await _rotate(api, revoked["info"]["id"])
    assert answer.status_code == 404 and "revoked" in answer.json()["error"]["message"]
    assert (await _rotate(api, "no-such-key")).status_code == 404
    assert (await _rotate(api, configured["id"], json={"grace_s": -1.0})).status_code == 422
    client_rotates = await api.http.post(
        f"{KEYS_PATH}/{revoked['info']['id']}/rotate", headers=api.auth("client")
    )
    assert client_rotates.status_code == 403


async def test_a_worker_key_limited_to_task_types_registers_and_claims_only_those(api: Api) -> None:
    limited = await _create(api, role="worker", namespaces=["a"], task_types=["noop"])
    assert limited["info"]["task_types"] == ["noop"]
    headers = _bearer(limited["key"])
    refused = await api.http.post(
        f"{API_PREFIX}/workers/register", json={"task_types": ["noop", "ocr"]}, headers=headers
    )
    assert refused.status_code == 403
    error = refused.json()["error"]
    assert error["code"] == "task_type_forbidden"
    assert "ocr" in error["message"] and "noop" in error["message"]

    await api.register(task_types=["ocr"])  # an unlimited agent makes ocr a known type
    worker_id = await api.register(headers=headers, task_types=["noop"])
    client_a = await api.new_key("client", "a")
    ocr_job = await api.submit(type="ocr", headers=client_a)
    noop_job = await api.submit(type="noop", headers=client_a)
    claimed = await api.claim(worker_id, max_tasks=5, headers=headers)
    assert [task["job_id"] for task in claimed] == [noop_job["id"]]
    assert await api.claim(worker_id, max_tasks=5, headers=headers) == []
    assert (await api.job(ocr_job["id"], headers=client_a))["state"] == "queued"

    workers = (await api.http.get(f"{API_PREFIX}/workers", headers=api.auth("admin"))).json()
    mine = next(w for w in workers if w["id"] == worker_id)
    assert mine["namespaces"] == ["a"] and mine["allowed_task_types"] == ["noop"]
    unlimited = next(w for w in workers if w["id"] != worker_id)
    assert unlimited["namespaces"] == [] and unlimited["allowed_task_types"] == []


async def test_the_claim_keeps_to_the_key_task_types_whatever_the_process_cached(api: Api) -> None:
    """The agent's facts are cached per process; the claim still intersects them with the key's."""
    limited = await _create(api, role="worker", task_types=["noop"])
    await api.register(task_types=["ocr"])
    worker_id = await api.register(headers=_bearer(limited["key"]), task_types=["noop"])
    ocr_job = await api.submit(type="ocr")
    facts = WorkerFacts(worker_id, limited["info"]["id"], "cpu", ("noop", "ocr"), ())
    api.coord.worker_facts[worker_id] = facts
    tasks = await claims.claim(api.coord, WorkerRoute.of(facts), 5, (), ("noop",))
    assert tasks == []
    assert (await api.job(ocr_job["id"]))["state"] == "queued"


async def test_a_metrics_key_is_refused_on_every_api_route_it_tries(api: Api) -> None:
    metrics = await _create(api, role="metrics")
    assert metrics["key"].startswith("tp_m_")
    headers = _bearer(metrics["key"])
    calls = [
        api.http.get(f"{API_PREFIX}/jobs", headers=headers),
        api.http.get(f"{API_PREFIX}/types", headers=headers),
        api.http.get(KEYS_PATH, headers=headers),
        api.http.post(f"{API_PREFIX}/workers/register", json={"task_types": ["noop"]}, headers=headers),
        api.http.post(f"{API_PREFIX}/queues/requeue", json={"states": ["dead"]}, headers=headers),
        api.http.post(f"{API_PREFIX}/queues/empty", json={"type": "noop"}, headers=headers),
    ]
    for call in calls:
        response = await call
        assert response.status_code == 403, (response.request.url, response.text)


async def test_keys_made_with_a_lifetime_or_types_are_checked(api: Api) -> None:
    for body in (
        {"role": "client", "task_types": ["noop"]},
        {"role": "worker", "expires_in_s": 0},
        {"role": "worker", "task_types": ["Not A Type"]},
    ):
        response = await api.http.post(KEYS_PATH, json=body, headers=api.auth("admin"))
        assert response.status_code == 422, (body, response.text)


def test_an_agent_told_its_key_expired_says_so() -> None:
    request = httpx.Request("POST", "http://coordinator/api/v1/workers/w/claim")
    body = {"error": {"code": "key_expired", "message": "this API key expired at 2026-01-01T00:00:00+00:00"}}
    with pytest.raises(AuthError, match=r"key_expired.*issue a new worker key"):
        raise_for_response(httpx.Response(401, json=body, request=request))
