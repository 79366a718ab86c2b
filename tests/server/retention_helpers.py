"""Jobs brought to each finished state through the API, and what the database keeps of them."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from taskpost.protocol import API_PREFIX
from taskpost.server.services.events import EVENTS
from taskpost.server.services.jobs import JOBS
from tests.server.blobs_helpers import put_output
from tests.server.conftest import Api

JOB_TYPES = ["noop", "resize"]
"""The types the helper's agent declares (so that ``resize`` may be submitted)."""


class Finisher:
    """Ends jobs the way clients and agents do: completed, dead or cancelled."""

    def __init__(self, api: Api) -> None:
        self.api = api
        self._worker: str | None = None

    async def worker(self) -> str:
        if self._worker is None:
            self._worker = await self.api.register(task_types=JOB_TYPES)
        return self._worker

    async def finish(
        self, state: str, *, headers: dict[str, str] | None = None, output: bytes | None = None, **spec: Any
    ) -> dict[str, Any]:
        """A new job (``spec`` as for ``Api.submit``) ended in ``state``; returns the job."""
        api = self.api
        worker = await self.worker()  # before the submit: it makes the job types known
        if state == "dead":
            spec.setdefault("max_attempts", 1)
        job = await api.submit(headers=headers, priority="high", **spec)
        if state == "cancelled":
            response = await api.http.post(
                f"{API_PREFIX}/jobs/{job['id']}/cancel", headers=headers or api.auth("client")
            )
            assert response.status_code == 200, response.text
        else:
            [task] = await api.claim(worker)
            assert task["job_id"] == job["id"], "another queued job was claimed first"
            if output is not None:
                assert (await put_output(api, task, "out.txt", output)).status_code == 201
            outcome = "succeeded" if state == "completed" else "failed"
            extra = {} if state == "completed" else {"error_message": "no luck"}
            assert (await api.complete(worker, task, outcome=outcome, **extra))["accepted"]
        ended = await api.job(job["id"], headers=headers)
        assert ended["state"] == state, ended
        return ended


async def job_ids(api: Api) -> set[str]:
    async with api.coord.db.read() as conn:
        return set((await conn.execute(select(JOBS.c.id))).scalars())


async def event_count(api: Api, job_id: str) -> int:
    async with api.coord.db.read() as conn:
        found = await conn.execute(select(func.count()).select_from(EVENTS).where(EVENTS.c.job_id == job_id))
        return int(found.scalar_one())
