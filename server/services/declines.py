"""Tasks an agent declines: a relative ``local_path`` under none of its files roots.

A declined task goes back to the queue without using an attempt, and the agent is added to the
job's ``declined_by`` (``{worker_id, roots}``), which the claim reads so that the agent is not
handed the job again. Once every live agent that could claim the job has declined it, no agent
has the file: the job is dead with the error kind ``not_found``, naming the roots tried.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from taskpost.protocol import LOCAL_PATH_PARAM, JobState
from taskpost.server.coordinator import Coordinator
from taskpost.server.services.jobs import JOBS
from taskpost.server.services.local_paths import live_agents, roots_of

NOT_FOUND = "not_found"


@dataclass(frozen=True)
class Declined:
    """Where a declined job goes: the queue, or dead when nobody is left to try."""

    state: JobState
    values: dict[str, Any]
    """Column values to set besides the release's own (declined_by, and the error when dead)."""
    detail: str
    """For the job's ``declined`` event."""


async def decline(
    conn: AsyncConnection, coord: Coordinator, job_id: str, worker_id: str, now: float
) -> Declined:
    """Record that ``worker_id`` declined ``job_id``, inside the release's transaction."""
    job = (
        await conn.execute(
            select(
                JOBS.c.type,
                JOBS.c.namespace,
                JOBS.c.worker_type,
                JOBS.c.labels,
                JOBS.c.params,
                JOBS.c.declined_by,
            ).where(JOBS.c.id == job_id)
        )
    ).one()
    agents = await live_agents(conn, coord, now)
    facts = coord.worker_facts.get(worker_id)
    own_labels = facts.labels if facts else next((a.labels for a in agents if a.worker_id == worker_id), ())
    roots = roots_of(own_labels)
    declined_by = [*(job.declined_by or []), {"worker_id": worker_id, "roots": roots}]
    values: dict[str, Any] = {"declined_by": declined_by}
    detail = f"roots: {', '.join(roots) or 'none'}"
    declined_ids = {entry.get("worker_id") for entry in declined_by}
    labels = json.loads(job.labels)
    others = [agent for agent in agents if agent.worker_id not in declined_ids]
    if any(agent.can_run(job.type, job.worker_type, labels, job.namespace) for agent in others):
        return Declined(JobState.QUEUED, values, detail)
    tried = sorted({root for entry in declined_by for root in entry.get("roots", [])})
    message = (
        f"local_path {job.params.get(LOCAL_PATH_PARAM)!r} is under none of the files roots tried"
        f" ({', '.join(tried) or 'no agent had a files root'}):"
        f" every live agent running {job.type!r} declined it"
    )
    values.update(
        state=JobState.DEAD.value,
        ended_at=now,
        error={"message": message, "kind": NOT_FOUND, "retryable": False, "traceback": None},
    )
    return Declined(JobState.DEAD, values, f"{detail}; -> dead: {message}")
