"""Unauthenticated liveness: ``GET /health``.

While the database cannot be reached it answers 503 with ``"database": "unavailable"`` (and
``"status": "ERROR"``); the next call tries the database again, so it turns 200 by itself.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from taskpost.protocol import Health
from taskpost.server.api.deps import CoordinatorDep
from taskpost.server.errors import DatabaseUnavailable
from taskpost.server.services.workers import list_workers
from taskpost.server.version import VERSION

router = APIRouter(tags=["health"])

DATABASE_OK = "ok"
DATABASE_UNAVAILABLE = "unavailable"


@router.get("/health", response_model=Health, responses={503: {"model": Health}})
async def health(coord: CoordinatorDep) -> JSONResponse:
    database_ok = await coord.db.ping()
    alive = 0
    if database_ok:
        try:
            alive = sum(1 for worker in await list_workers(coord) if worker.alive)
        except DatabaseUnavailable:
            database_ok = False  # it went away between the two queries
    body = Health(
        status="OK" if database_ok else "ERROR",
        database=DATABASE_OK if database_ok else DATABASE_UNAVAILABLE,
        version=VERSION,
        workers_alive=alive,
    )
    return JSONResponse(status_code=200 if database_ok else 503, content=body.model_dump())
