"""Unauthenticated liveness: ``GET /health``."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from protocol import Health
from server.api.deps import CoordinatorDep
from server.services.workers import list_workers
from server.version import VERSION

router = APIRouter(tags=["health"])


@router.get("/health", response_model=Health, responses={503: {"model": Health}})
async def health(coord: CoordinatorDep) -> JSONResponse:
    database_ok = await coord.db.ping()
    alive = 0
    if database_ok:
        alive = sum(1 for worker in await list_workers(coord) if worker.alive)
    body = Health(
        status="OK" if database_ok else "ERROR",
        database="connected" if database_ok else "unreachable",
        version=VERSION,
        workers_alive=alive,
    )
    return JSONResponse(status_code=200 if database_ok else 503, content=body.model_dump())
