"""The job-type registry: ``GET /api/v1/types``."""

from __future__ import annotations

from fastapi import APIRouter

from taskpost.protocol import JobTypeList
from taskpost.server.api.deps import AnyRoleDep, CoordinatorDep
from taskpost.server.services import job_types

router = APIRouter(tags=["types"])


@router.get("/types")
async def list_types(coord: CoordinatorDep, _: AnyRoleDep) -> JobTypeList:
    """The known job types: the parameter schema submits are checked against, and the live agents
    that serve each (``online``: one of them takes work now)."""
    return JobTypeList(types=await job_types.list_types(coord))
