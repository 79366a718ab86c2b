"""Agents cannot create job types at will: only identifiers, and only while an agent declares them."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from taskpost.protocol import API_PREFIX, WorkerRegister
from taskpost.server.errors import InvalidParams
from taskpost.server.services import workers
from taskpost.server.services.job_types import JOB_TYPES
from taskpost.server.services.workers import WORKERS
from taskpost.server.settings import Settings
from tests.server.conftest import Api

pytestmark = pytest.mark.anyio

RETENTION_S = 1000.0
BAD_TYPES = ["Resize", "../etc", "a b", "", "x" * 65, "1st", "ünïcode", "-dash"]


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"job_type_retention_s": RETENTION_S})


async def _stored_types(api: Api) -> set[str]:
    async with api.coord.db.read() as conn:
        return set((await conn.execute(select(JOB_TYPES.c.name))).scalars())


@pytest.mark.parametrize("bad", BAD_TYPES)
async def test_registering_a_type_that_is_not_an_identifier_is_a_422(api: Api, bad: str) -> None:
    response = await api.http.post(
        f"{API_PREFIX}/workers/register", json={"task_types": ["noop", bad]}, headers=api.auth("worker")
    )
    assert response.status_code == 422, response.text
    assert bad not in await _stored_types(api)


async def test_the_service_never_stores_an_invalid_type(api: Api) -> None:
    """Even a request that skipped the wire model's validation."""
    for bad in BAD_TYPES:
        request = WorkerRegister.model_construct(
            task_types=[bad],
            name=None,
            worker_type="cpu",
            labels=[],
            max_concurrent=1,
            version=None,
            host=None,
        )
        with pytest.raises(InvalidParams):
            await workers.register(api.coord, request, None)
    assert await _stored_types(api) == set()
    async with api.coord.db.read() as conn:
        assert (await conn.execute(select(WORKERS.c.id))).all() == []


async def test_types_of_agents_gone_past_the_retention_are_no_longer_known(api: Api) -> None:
    silent = await api.register(task_types=["resize"])
    alive = await api.register(task_types=["thumbnail"])
    assert (await api.submit(type="resize"))["type"] == "resize"
    for _ in range(3):  # the live agent heartbeats; the other one is gone for good
        api.clock.advance(RETENTION_S / 2)
        await api.heartbeat(alive)
    assert silent  # registered, never heard from again
    refused = await api.submit(expect=422, type="resize")
    assert refused["error"]["code"] == "unknown_job_type"
    known = refused["error"]["details"]["known_types"]
    assert "resize" not in known and "thumbnail" in known
    assert {"noop", "transcription", "ocr", "url_audio", "document"} <= set(known)
    assert (await api.submit(type="thumbnail"))["type"] == "thumbnail"
    assert (await api.submit(type="noop"))["type"] == "noop"  # built-in types never expire


async def test_a_type_comes_back_when_an_agent_declares_it_again(api: Api) -> None:
    await api.register(task_types=["resize"])
    api.clock.advance(RETENTION_S + 1)
    await api.submit(expect=422, type="resize")
    await api.register(task_types=["resize"])
    assert (await api.submit(type="resize"))["type"] == "resize"
