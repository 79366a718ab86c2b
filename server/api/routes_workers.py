"""Agent routes: register, claim (long poll), heartbeat, complete, release, task files."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Request, status
from starlette.responses import Response

from taskpost.protocol import (
    LEASE_HEADER,
    SHA256_HEADER,
    SHA256_PATTERN,
    ClaimRequest,
    ClaimResponse,
    CompleteRequest,
    CompleteResponse,
    FileInfo,
    HeartbeatRequest,
    HeartbeatResponse,
    ReleaseRequest,
    WorkerRegister,
    WorkerRegistered,
)
from taskpost.server.api import files, openapi
from taskpost.server.api.deps import CoordinatorDep, WorkerDep, WorkerRouteDep
from taskpost.server.errors import FileNotFound
from taskpost.server.services import claims, leases, uploads, workers

router = APIRouter(tags=["agents"])

LeaseHeader = Annotated[str | None, Header(alias=LEASE_HEADER)]


@router.post("/workers/register", status_code=status.HTTP_201_CREATED)
async def register(body: WorkerRegister, coord: CoordinatorDep, principal: WorkerDep) -> WorkerRegistered:
    return await workers.register(coord, body, principal.key_id)


@router.post(
    "/workers/{worker_id}/claim",
    response_model=ClaimResponse,
    responses={204: {"description": "nothing to do"}},
)
async def claim(
    body: ClaimRequest, coord: CoordinatorDep, route: WorkerRouteDep, principal: WorkerDep
) -> Response | ClaimResponse:
    # The namespaces come from the key on this request, never from a per-process cache.
    reply = await claims.claim_request(
        coord,
        route,
        body.max_tasks,
        body.wait_s,
        body.completions,
        principal.namespaces,
        principal.task_types,
    )
    if not reply.tasks and not reply.acks and not reply.drain:
        return Response(status_code=status.HTTP_204_NO_CONTENT)
    # Serialised here: a returned model would be dumped, validated again against
    # response_model and dumped once more by FastAPI, on the busiest route of all.
    return Response(reply.model_dump_json(), media_type="application/json")


@router.post("/workers/{worker_id}/complete")
async def complete(body: CompleteRequest, coord: CoordinatorDep, route: WorkerRouteDep) -> CompleteResponse:
    return CompleteResponse(acks=await leases.complete(coord, route.worker_id, body.completions))


@router.post("/workers/{worker_id}/heartbeat")
async def heartbeat(
    body: HeartbeatRequest, coord: CoordinatorDep, route: WorkerRouteDep
) -> HeartbeatResponse:
    return await leases.heartbeat(coord, route, body.tasks)


@router.post("/workers/{worker_id}/release")
async def release(body: ReleaseRequest, coord: CoordinatorDep, route: WorkerRouteDep) -> CompleteResponse:
    return CompleteResponse(acks=await leases.release(coord, route.worker_id, body.tasks, body.reason))


@router.delete("/workers/{worker_id}", status_code=status.HTTP_204_NO_CONTENT)
async def deregister(coord: CoordinatorDep, route: WorkerRouteDep) -> None:
    await workers.deregister(coord, route)


@router.get("/tasks/{job_id}/inputs/{name}", response_class=Response)
async def download_input(
    job_id: str,
    name: files.FileNameParam,
    coord: CoordinatorDep,
    _: WorkerDep,
    lease_token: LeaseHeader = None,
) -> Response:
    row = await leases.require_lease(coord, job_id, lease_token)
    for entry in row.inputs:
        if entry["name"] == name:
            return await files.blob_response(coord, entry)
    raise FileNotFound(f"job {job_id} has no input named {name!r}", job_id=job_id, name=name)


@router.put(
    "/tasks/{job_id}/outputs/{name}", status_code=status.HTTP_201_CREATED, openapi_extra=openapi.RAW_BODY
)
async def upload_output(
    job_id: str,
    name: files.FileNameParam,
    request: Request,
    coord: CoordinatorDep,
    _: WorkerDep,
    lease_token: LeaseHeader = None,
    expected_sha256: Annotated[str | None, Header(alias=SHA256_HEADER, pattern=SHA256_PATTERN)] = None,
) -> FileInfo:
    """An output of the attempt holding the lease; the job's once that attempt succeeds."""
    files.check_name(name)
    chunks = files.body_chunks(request)
    return await uploads.store_output(coord, job_id, lease_token, name, chunks, expected_sha256)
