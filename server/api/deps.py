"""Typed FastAPI dependencies: the coordinator and the caller's identity."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request

from protocol import Role
from server.coordinator import Coordinator, WorkerRoute
from server.errors import Forbidden
from server.services import keys, workers
from server.services.keys import Principal


def get_coordinator(request: Request) -> Coordinator:
    coordinator: Coordinator = request.app.state.coordinator
    return coordinator


CoordinatorDep = Annotated[Coordinator, Depends(get_coordinator)]


def _raw_key(authorization: str | None, x_api_key: str | None) -> str | None:
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "bearer" and value:
            return value.strip()
    return x_api_key


async def get_principal(
    coord: CoordinatorDep,
    authorization: Annotated[str | None, Header()] = None,
    x_api_key: Annotated[str | None, Header()] = None,
) -> Principal:
    return await keys.authenticate(coord, _raw_key(authorization, x_api_key))


def require(*roles: Role) -> object:
    allowed = {Role.ADMIN, *roles}
    names = ", ".join(sorted(role.value for role in allowed))

    async def check(principal: Annotated[Principal, Depends(get_principal)]) -> Principal:
        if principal.role not in allowed:
            raise Forbidden(f"a {principal.role.value} key may not do this; it needs one of: {names}")
        return principal

    return Depends(check)


AdminDep = Annotated[Principal, require()]
ClientDep = Annotated[Principal, require(Role.CLIENT)]
WorkerDep = Annotated[Principal, require(Role.WORKER)]
AnyRoleDep = Annotated[Principal, require(Role.CLIENT, Role.WORKER)]


async def get_worker_route(worker_id: str, coord: CoordinatorDep, principal: WorkerDep) -> WorkerRoute:
    return await workers.route_for(coord, worker_id, principal.key_id, principal.role is Role.ADMIN)


WorkerRouteDep = Annotated[WorkerRoute, Depends(get_worker_route)]
