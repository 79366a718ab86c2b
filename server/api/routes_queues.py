"""Bulk queue routes: requeue ended jobs, empty a job type's queue.

They live under ``/queues`` because ``POST /jobs/{job_id}`` is the short-form submit: a
``POST /jobs/requeue`` would submit a job of type ``requeue``.
"""

from __future__ import annotations

from fastapi import APIRouter

from taskpost.protocol import BulkRequeue, BulkResult, QueueEmpty
from taskpost.server.api.deps import CoordinatorDep, JobScopeDep
from taskpost.server.services import queues

router = APIRouter(tags=["queues"])


@router.post("/queues/requeue")
async def requeue(body: BulkRequeue, coord: CoordinatorDep, scope: JobScopeDep) -> BulkResult:
    """Put failed, dead or cancelled jobs back in the queue (at most 1000 a call: see ``more``);
    a client key's own namespace, an admin's ``?namespace=`` or every namespace."""
    return await queues.requeue(coord, body, scope)


@router.post("/queues/empty")
async def empty(body: QueueEmpty, coord: CoordinatorDep, scope: JobScopeDep) -> BulkResult:
    """Cancel the queued jobs of a type, and its scheduled ones with ``include_scheduled`` (at most
    1000 a call: see ``more``)."""
    return await queues.empty(coord, body, scope)
