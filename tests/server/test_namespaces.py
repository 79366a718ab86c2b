"""Tenants: a client key sees and acts on its namespace's jobs only; worker keys may be restricted."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import text

from taskpost.protocol import API_PREFIX
from tests.conftest import sqlite_only
from tests.server.conftest import Api

pytestmark = pytest.mark.anyio


async def _complete_with_output(api: Api, job_id: str) -> None:
    worker = await api.register()
    [task] = await api.claim(worker)
    assert task["job_id"] == job_id
    response = await api.http.put(
        f"{API_PREFIX}/tasks/{job_id}/outputs/out.txt",
        content=b"secret output",
        headers={**api.auth("worker"), "X-Lease-Token": task["lease_token"]},
    )
    assert response.status_code == 201, response.text
    assert (await api.complete(worker, task, result={"secret": 1}))["accepted"]


async def test_another_namespace_job_is_not_found_for_every_operation(api: Api) -> None:
    acme = await api.new_key("client", "acme")
    globex = await api.new_key("client", "globex")
    job = await api.submit(headers=acme, params={"owner": "acme"})
    assert job["namespace"] == "acme"
    await _complete_with_output(api, job["id"])
    job_path = f"{API_PREFIX}/jobs/{job['id']}"
    for method, path in [
        ("GET", job_path),
        ("GET", f"{job_path}/events"),
        ("GET", f"{job_path}/outputs/out.txt"),
        ("POST", f"{job_path}/cancel"),
        ("POST", f"{job_path}/requeue"),
    ]:
        response = await api.http.request(method, path, headers=globex)
        assert response.status_code == 404, (method, path, response.text)
        assert response.json()["error"]["code"] == "job_not_found"
    owned = await api.http.get(f"{job_path}/outputs/out.txt", headers=acme)
    assert owned.status_code == 200 and owned.content == b"secret output"
    assert (await api.job(job["id"], headers=acme))["result"] == {"secret": 1}


async def test_list_and_stats_show_only_the_own_namespace(api: Api) -> None:
    acme = await api.new_key("client", "acme")
    globex = await api.new_key("client", "globex")
    mine = [(await api.submit(headers=acme))["id"] for _ in range(3)]
    theirs = (await api.submit(headers=globex, priority="high"))["id"]

    page = (await api.http.get(f"{API_PREFIX}/jobs?limit=2", headers=acme)).json()
    second = (await api.http.get(f"{API_PREFIX}/jobs?cursor={page['next_cursor']}", headers=acme)).json()
    assert [j["id"] for j in page["jobs"] + second["jobs"]] == mine[::-1]
    stats = (await api.http.get(f"{API_PREFIX}/stats", headers=acme)).json()
    assert stats["totals"] == {"queued": 3}
    assert {c["priority"] for c in stats["counts"]} == {"default"}
    other_stats = (await api.http.get(f"{API_PREFIX}/stats", headers=globex)).json()
    assert other_stats["totals"] == {"queued": 1}

    everything = (await api.http.get(f"{API_PREFIX}/jobs", headers=api.auth("admin"))).json()
    assert {j["id"] for j in everything["jobs"]} == {*mine, theirs}
    only = (await api.http.get(f"{API_PREFIX}/jobs?namespace=globex", headers=api.auth("admin"))).json()
    assert [j["id"] for j in only["jobs"]] == [theirs]
    admin_stats = (await api.http.get(f"{API_PREFIX}/stats?namespace=acme", headers=api.auth("admin"))).json()
    assert admin_stats["totals"] == {"queued": 3}
    assert (await api.http.get(f"{API_PREFIX}/stats", headers=api.auth("admin"))).json()["totals"] == {
        "queued": 4
    }


async def test_a_client_cannot_ask_for_another_namespace(api: Api) -> None:
    acme = await api.new_key("client", "acme")
    for method, path in [("GET", "/jobs"), ("GET", "/stats"), ("POST", "/jobs")]:
        response = await api.http.request(
            method, f"{API_PREFIX}{path}?namespace=globex", json={"type": "noop"}, headers=acme
        )
        assert response.status_code == 403, (path, response.text)
    own = await api.http.get(f"{API_PREFIX}/jobs?namespace=acme", headers=acme)
    assert own.status_code == 200
    bad = await api.http.get(f"{API_PREFIX}/jobs?namespace=Not%20A%20Name", headers=api.auth("admin"))
    assert bad.status_code == 422


async def test_admin_submits_into_a_namespace_or_the_default(api: Api) -> None:
    acme = await api.new_key("client", "acme")
    response = await api.http.post(
        f"{API_PREFIX}/jobs?namespace=acme", json={"type": "noop"}, headers=api.auth("admin")
    )
    assert response.status_code == 201 and response.json()["job"]["namespace"] == "acme"
    assert (await api.job(response.json()["job"]["id"], headers=acme))["namespace"] == "acme"
    default = await api.submit(headers=api.auth("admin"))
    assert default["namespace"] == "default"
    assert (await api.job(default["id"]))["namespace"] == "default"  # the fixture's client key


async def test_idempotency_keys_are_unique_per_namespace(api: Api) -> None:
    acme = await api.new_key("client", "acme")
    globex = await api.new_key("client", "globex")
    first = await api.submit(headers=acme, idempotency_key="order-7", params={"n": 1})
    theirs = await api.submit(headers=globex, idempotency_key="order-7", params={"n": 2})
    assert theirs["id"] != first["id"] and theirs["params"] == {"n": 2}
    again = await api.submit(expect=200, headers=acme, idempotency_key="order-7")
    assert again["id"] == first["id"]
    body = {"jobs": [{"type": "noop", "idempotency_key": "order-7"}]}
    batch = await api.http.post(f"{API_PREFIX}/jobs/batch", json=body, headers=globex)
    assert batch.status_code == 201
    assert batch.json()["jobs"][0]["job"]["id"] == theirs["id"]


async def test_an_upload_is_an_input_only_in_its_own_namespace(api: Api) -> None:
    acme = await api.new_key("client", "acme")
    globex = await api.new_key("client", "globex")
    upload = await api.http.post(f"{API_PREFIX}/uploads?name=a.txt", content=b"acme data", headers=acme)
    assert upload.status_code == 201
    ref = {"name": "a.txt", "upload_id": upload.json()["upload_id"]}
    stolen = await api.submit(expect=404, headers=globex, inputs=[ref])
    assert stolen["error"]["code"] == "upload_not_found"
    own = await api.submit(headers=acme, inputs=[ref])
    assert own["inputs"][0]["name"] == "a.txt"


async def test_a_restricted_worker_claims_only_its_namespaces(api: Api) -> None:
    acme = await api.new_key("client", "acme")
    globex = await api.new_key("client", "globex")
    restricted = await api.new_key("worker", "acme")
    theirs = await api.submit(headers=globex, priority="high")
    mine = await api.submit(headers=acme, priority="low")
    worker = await api.register(headers=restricted)
    claimed = await api.claim(worker, max_tasks=10, headers=restricted)
    assert [t["job_id"] for t in claimed] == [mine["id"]]
    assert await api.claim(worker, max_tasks=10, headers=restricted) == []
    anyone = await api.register()
    assert [t["job_id"] for t in await api.claim(anyone, max_tasks=10)] == [theirs["id"]]


async def test_keys_carry_their_namespaces(api: Api) -> None:
    admin = api.auth("admin")
    cases = [
        ({"role": "client"}, 201, ["default"]),
        ({"role": "client", "namespaces": ["acme"]}, 201, ["acme"]),
        ({"role": "client", "namespaces": ["acme", "globex"]}, 422, None),
        ({"role": "worker"}, 201, []),
        ({"role": "worker", "namespaces": ["b", "a", "b"]}, 201, ["a", "b"]),
        ({"role": "admin", "namespaces": ["acme"]}, 422, None),
        ({"role": "admin"}, 201, []),
    ]
    for body, status, namespaces in cases:
        response = await api.http.post(f"{API_PREFIX}/keys", json=body, headers=admin)
        assert response.status_code == status, (body, response.text)
        if namespaces is not None:
            info = response.json()["info"]
            assert info["namespaces"] == namespaces
            listed = (await api.http.get(f"{API_PREFIX}/keys", headers=admin)).json()
            assert next(k for k in listed if k["id"] == info["id"])["namespaces"] == namespaces


async def test_stats_list_only_agents_that_serve_the_namespace(api: Api) -> None:
    acme = await api.new_key("client", "acme")
    globex_worker = await api.new_key("worker", "globex")
    await api.register(headers=globex_worker, name="globex-box")
    await api.register(name="shared")
    agents = (await api.http.get(f"{API_PREFIX}/stats", headers=acme)).json()["workers"]
    assert [a["name"] for a in agents] == ["shared"]
    admin_view = (await api.http.get(f"{API_PREFIX}/stats", headers=api.auth("admin"))).json()["workers"]
    assert {a["name"] for a in admin_view} == {"shared", "globex-box"}


def _plan(rows: list[tuple[object, ...]]) -> str:
    return "\n".join(str(row[-1]) for row in rows)


@sqlite_only  # PostgreSQL's plan: tests/server/test_postgres_claim.py
async def test_the_claim_walks_the_claim_index_without_sorting(api: Api) -> None:
    """EXPLAIN QUERY PLAN of the claim, with and without a namespace restriction."""
    dialect = api.coord.db.dialect
    for namespaces in [(), ("acme",), ("acme", "globex")]:
        statement = dialect.claim_statement(type_count=2, with_labels=True, namespace_count=len(namespaces))
        params: dict[str, object] = {
            "worker_id": "w",
            "now": 0.0,
            "lease_expires_at": 1.0,
            "limit": 5,
            "worker_type": "cpu",
            "type_0": "noop",
            "type_1": "ocr",
            "worker_labels": json.dumps(["eu"]),
            **{f"namespace_{i}": name for i, name in enumerate(namespaces)},
        }
        async with api.coord.db.read() as conn:
            explain = text(f"EXPLAIN QUERY PLAN {statement.element.text}")
            rows = (await conn.execute(explain, params)).all()
        plan = _plan([tuple(row) for row in rows])
        assert "USING INDEX ix_jobs_claim" in plan, plan
        assert "TEMP B-TREE" not in plan, plan
