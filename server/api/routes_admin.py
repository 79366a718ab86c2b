"""Admin routes: API keys, agents, statistics, purges."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, status

from taskpost.protocol import KeyCreate, KeyCreated, KeyPublic, KeyRotate, Stats, WorkerPublic
from taskpost.protocol.admin import PurgeRequest, PurgeResult
from taskpost.server.api.deps import AdminDep, CoordinatorDep, JobScopeDep, NamespaceQuery
from taskpost.server.services import keys, retention, stats, workers

router = APIRouter(tags=["admin"])


@router.post("/keys", status_code=status.HTTP_201_CREATED)
async def create_key(body: KeyCreate, coord: CoordinatorDep, _: AdminDep) -> KeyCreated:
    return await keys.create(
        coord,
        body.role,
        body.name,
        body.namespaces,
        expires_in_s=body.expires_in_s,
        task_types=body.task_types,
    )


@router.get("/keys")
async def list_keys(coord: CoordinatorDep, _: AdminDep) -> list[KeyPublic]:
    return await keys.list_keys(coord)


@router.delete("/keys/{key_id}")
async def revoke_key(key_id: str, coord: CoordinatorDep, principal: AdminDep) -> KeyPublic:
    return await keys.revoke(coord, key_id, by_key_id=principal.key_id)


@router.post("/keys/{key_id}/rotate", status_code=status.HTTP_201_CREATED)
async def rotate_key(
    key_id: str,
    coord: CoordinatorDep,
    _: AdminDep,
    body: Annotated[KeyRotate | None, Body()] = None,
) -> KeyCreated:
    """A new secret for the key (by id or prefix); the old one keeps working for ``grace_s``
    seconds. The body may be left out: the default grace is a day."""
    return await keys.rotate(coord, key_id, (body or KeyRotate()).grace_s)


@router.get("/stats")
async def queue_stats(coord: CoordinatorDep, scope: JobScopeDep) -> Stats:
    """A client key's own namespace; an admin's ``?namespace=``, or every namespace."""
    return await stats.stats(coord, scope)


@router.get("/workers")
async def list_workers(coord: CoordinatorDep, _: AdminDep, include_gone: bool = False) -> list[WorkerPublic]:
    return await workers.list_workers(coord, include_gone=include_gone)


@router.post("/workers/{worker_id}/drain")
async def drain(worker_id: str, coord: CoordinatorDep, _: AdminDep) -> WorkerPublic:
    return await workers.set_draining(coord, worker_id, True)


@router.post("/workers/{worker_id}/resume")
async def resume(worker_id: str, coord: CoordinatorDep, _: AdminDep) -> WorkerPublic:
    return await workers.set_draining(coord, worker_id, False)


@router.post("/admin/purge")
async def purge(
    body: PurgeRequest, coord: CoordinatorDep, _: AdminDep, namespace: NamespaceQuery = None
) -> PurgeResult:
    """Delete finished jobs now, in every namespace or ``?namespace=``; ``dry_run`` only counts."""
    return await retention.purge(coord, body, namespace)
