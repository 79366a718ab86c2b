"""A submit's ``webhook_url``: checked at submit, kept on the job until it ends (delivery: webhooks)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from taskpost.server.services.jobs import JOBS
from tests.server.conftest import Api

pytestmark = pytest.mark.anyio


async def test_a_webhook_url_is_stored_waiting_and_shown(api: Api) -> None:
    url = "https://93.184.216.34/hooks/taskpost"  # a literal public address: no DNS lookup
    job = await api.submit(webhook_url=url)
    assert job["webhook_url"] == url
    assert (await api.job(job["id"]))["webhook_url"] == url
    async with api.coord.db.read() as conn:
        state = (await conn.execute(select(JOBS.c.webhook_state).where(JOBS.c.id == job["id"]))).scalar_one()
    assert state == "waiting"
    plain = await api.submit()
    assert plain["webhook_url"] is None


@pytest.mark.parametrize("url", ["http://127.0.0.1:8080/hook", "ftp://93.184.216.34/hook"])
async def test_an_unsafe_webhook_url_is_refused_naming_the_field(api: Api, url: str) -> None:
    body = await api.submit(expect=422, webhook_url=url)
    assert body["error"]["details"]["field"] == "webhook_url"
