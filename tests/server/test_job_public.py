"""Rows to wire models: ``job_public`` alone makes the whole job, its namespace included."""

from __future__ import annotations

import pytest

from taskpost.server.services.convert import job_public
from taskpost.server.services.job_rows import decoded, job_select
from taskpost.server.services.jobs import JOBS
from tests.server.conftest import Api

pytestmark = pytest.mark.anyio


async def test_job_public_carries_the_namespace_of_the_row(api: Api) -> None:
    acme = await api.new_key("client", "acme")
    submitted = await api.submit(headers=acme)
    async with api.coord.db.read() as conn:
        row = decoded((await conn.execute(job_select().where(JOBS.c.id == submitted["id"]))).one())
    assert job_public(row).namespace == "acme"
