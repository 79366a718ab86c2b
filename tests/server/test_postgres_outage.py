"""While the database cannot be reached: 503 ``database_unavailable`` with Retry-After, /health
says so, and the same process recovers by itself once the database is back."""

from __future__ import annotations

import pytest

from taskpost.protocol import API_PREFIX
from taskpost.server.errors import DatabaseUnavailable
from taskpost.server.services import stats
from taskpost.server.settings import Settings
from tests.conftest import postgres_only
from tests.server.conftest import Api, ManualClock, eventually, running_api
from tests.support.postgres import PostgresCluster

pytestmark = pytest.mark.anyio


def _unavailable(response: object) -> None:
    assert response.status_code == 503, response.text  # type: ignore[attr-defined]
    assert response.json()["error"]["code"] == "database_unavailable"  # type: ignore[attr-defined]
    assert int(response.headers["Retry-After"]) >= 1  # type: ignore[attr-defined]


@postgres_only
async def test_requests_get_503_while_postgresql_is_down_and_the_same_app_recovers(
    api: Api, postgres_restartable: PostgresCluster
) -> None:
    before = await api.submit()
    with postgres_restartable.stopped():
        client = api.auth("client")
        _unavailable(await api.http.get(f"{API_PREFIX}/jobs", headers=client))
        _unavailable(await api.http.post(f"{API_PREFIX}/jobs", json={"type": "noop"}, headers=client))
        health = await api.http.get("/health")
        assert health.status_code == 503
        assert health.json()["database"] == "unavailable" and health.json()["status"] == "ERROR"

    async def healthy() -> bool:
        return (await api.http.get("/health")).status_code == 200

    await eventually(healthy, "/health to answer 200 again")
    assert (await api.http.get("/health")).json()["database"] == "ok"
    after = await api.submit()
    worker = await api.register()
    claimed = [task["job_id"] for task in await api.claim(worker, max_tasks=5)]
    assert claimed == [before["id"], after["id"]]


async def test_a_request_that_gets_no_connection_in_time_is_answered_503(
    settings: Settings, clock: ManualClock
) -> None:
    one_connection = settings.model_copy(
        update={"db_pool_size": 1, "db_max_overflow": 0, "db_pool_timeout_s": 1.0}
    )
    async with running_api(one_connection, clock) as api:
        async with api.coord.db.read():  # the pool's only connection
            _unavailable(await api.http.get(f"{API_PREFIX}/jobs", headers=api.auth("client")))
            assert (await api.http.get("/health")).json()["database"] == "unavailable"
        assert (await api.http.get(f"{API_PREFIX}/jobs", headers=api.auth("client"))).status_code == 200


async def test_a_database_lost_inside_a_route_is_answered_503(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def lost(*_args: object, **_kwargs: object) -> None:
        raise DatabaseUnavailable()

    monkeypatch.setattr(stats, "stats", lost)
    _unavailable(await api.http.get(f"{API_PREFIX}/stats", headers=api.auth("client")))
