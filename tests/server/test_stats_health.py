"""Statistics, health, and what a restart does to running tasks."""

from __future__ import annotations

import pytest

from taskpost.protocol import API_PREFIX
from tests.server.conftest import Api

pytestmark = pytest.mark.anyio


async def test_health_needs_no_key(api: Api) -> None:
    response = await api.http.get("/health")
    assert response.status_code == 200
    assert response.json()["status"] == "OK" and response.json()["database"] == "ok"


async def test_stats_count_per_type_priority_and_state(api: Api) -> None:
    await api.submit(priority="high")
    await api.submit(priority="high")
    await api.submit(priority="low")
    worker = await api.register(name="w1", labels=["eu"])
    [task] = await api.claim(worker)
    stats = (await api.http.get(f"{API_PREFIX}/stats", headers=api.auth("client"))).json()
    counts = {(c["type"], c["priority"], c["state"]): c["count"] for c in stats["counts"]}
    assert counts == {
        ("noop", "high", "queued"): 1,
        ("noop", "high", "processing"): 1,
        ("noop", "low", "queued"): 1,
    }
    assert stats["totals"] == {"queued": 2, "processing": 1}
    [agent] = stats["workers"]
    assert (
        agent["name"] == "w1"
        and agent["running_tasks"] == 1
        and agent["alive"] is True
        and agent["labels"] == ["eu"]
    )
    await api.complete(worker, task)
    await api.http.delete(f"{API_PREFIX}/workers/{worker}", headers=api.auth("worker"))
    stats = (await api.http.get(f"{API_PREFIX}/stats", headers=api.auth("client"))).json()
    assert stats["workers"] == []
