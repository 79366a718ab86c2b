"""Keys and roles: 401 without a valid key, 403 for the wrong role, revocation at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from taskpost.protocol import API_PREFIX, Role
from taskpost.server.coordinator import Coordinator
from taskpost.server.services import keys, principals
from taskpost.server.settings import Settings
from tests.server.conftest import Api

pytestmark = pytest.mark.anyio


async def test_missing_and_unknown_keys_are_401(api: Api) -> None:
    response = await api.http.get(f"{API_PREFIX}/jobs")
    assert response.status_code == 401
    assert "Authorization: Bearer" in response.json()["error"]["message"]
    response = await api.http.get(f"{API_PREFIX}/jobs", headers={"Authorization": "Bearer nope"})
    assert response.status_code == 401


async def test_x_api_key_header_works_too(api: Api) -> None:
    response = await api.http.get(f"{API_PREFIX}/jobs", headers={"X-API-Key": api.keys["client"]})
    assert response.status_code == 200


async def test_two_different_keys_on_one_request_are_refused(api: Api) -> None:
    both_wrong_one = {"Authorization": f"Bearer {api.keys['client']}", "X-API-Key": "wrong"}
    response = await api.http.get(f"{API_PREFIX}/jobs", headers=both_wrong_one)
    assert response.status_code == 401, response.text
    assert "two different API keys" in response.json()["error"]["message"]
    two_valid = {"Authorization": f"Bearer {api.keys['client']}", "X-API-Key": api.keys["admin"]}
    assert (await api.http.get(f"{API_PREFIX}/jobs", headers=two_valid)).status_code == 401
    same = {"Authorization": f"Bearer {api.keys['client']}", "X-API-Key": api.keys["client"]}
    assert (await api.http.get(f"{API_PREFIX}/jobs", headers=same)).status_code == 200


async def test_an_admin_key_cannot_revoke_itself(api: Api) -> None:
    listed = (await api.http.get(f"{API_PREFIX}/keys", headers=api.auth("admin"))).json()
    own = next(k["id"] for k in listed if k["role"] == "admin")
    refused = await api.http.delete(f"{API_PREFIX}/keys/{own}", headers=api.auth("admin"))
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "own_key"
    assert (await api.http.get(f"{API_PREFIX}/keys", headers=api.auth("admin"))).status_code == 200
    other = await api.new_key("admin")
    revoked = await api.http.delete(f"{API_PREFIX}/keys/{own}", headers=other)
    assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None


@pytest.mark.parametrize(
    ("role", "method", "path", "body"),
    [
        ("worker", "POST", "/jobs", {"type": "noop"}),
        ("worker", "GET", "/stats", None),
        ("client", "POST", "/workers/register", {"task_types": ["noop"]}),
        ("client", "POST", "/keys", {"role": "admin"}),
        ("worker", "GET", "/keys", None),
        ("client", "GET", "/workers", None),
    ],
)
async def test_wrong_role_is_403(api: Api, role: str, method: str, path: str, body: object) -> None:
    response = await api.http.request(method, API_PREFIX + path, json=body, headers=api.auth(role))
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "forbidden"


async def test_key_lifecycle_and_revocation(api: Api) -> None:
    created = (
        await api.http.post(
            f"{API_PREFIX}/keys", json={"role": "client", "name": "ci"}, headers=api.auth("admin")
        )
    ).json()
    key, info = created["key"], created["info"]
    assert key.startswith(info["prefix"])
    listed = (await api.http.get(f"{API_PREFIX}/keys", headers=api.auth("admin"))).json()
    assert all("hash" not in k and "key" not in k for k in listed)
    assert info["id"] in [k["id"] for k in listed]
    use = await api.http.get(f"{API_PREFIX}/jobs", headers={"Authorization": f"Bearer {key}"})
    assert use.status_code == 200
    revoked = await api.http.delete(f"{API_PREFIX}/keys/{info['id']}", headers=api.auth("admin"))
    assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
    after = await api.http.get(f"{API_PREFIX}/jobs", headers={"Authorization": f"Bearer {key}"})
    assert after.status_code == 401
    assert "revoked" in after.json()["error"]["message"]
    listed = (await api.http.get(f"{API_PREFIX}/keys", headers=api.auth("admin"))).json()
    assert next(k for k in listed if k["id"] == info["id"])["last_used_at"] is not None


async def test_an_agent_acts_only_with_its_own_key(api: Api) -> None:
    worker = await api.register()
    other_key = (
        await api.http.post(f"{API_PREFIX}/keys", json={"role": "worker"}, headers=api.auth("admin"))
    ).json()["key"]
    response = await api.http.post(
        f"{API_PREFIX}/workers/{worker}/claim",
        json={"max_tasks": 1, "wait_s": 0},
        headers={"Authorization": f"Bearer {other_key}"},
    )
    assert response.status_code == 403


async def test_unknown_worker_is_told_to_register_again(api: Api) -> None:
    response = await api.http.post(f"{API_PREFIX}/workers/nobody/claim", json={}, headers=api.auth("worker"))
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "worker_not_found"


async def test_first_start_generates_one_admin_key(tmp_path: Path) -> None:
    coord = Coordinator.from_settings(Settings(data_dir=tmp_path, _env_file=None))
    try:
        await coord.db.create_schema()
        generated = await keys.ensure_admin_key(coord, None)
        assert generated is not None
        assert (await principals.authenticate(coord, generated)).role is Role.ADMIN
        assert await keys.ensure_admin_key(coord, None) is None  # shown once, never again
    finally:
        await coord.db.close()
