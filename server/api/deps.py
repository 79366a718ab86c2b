"""Typed FastAPI dependencies: the coordinator, the caller's identity and the namespaces it sees.

Every dependency is ``async def`` though none awaits anything: FastAPI runs a plain ``def``
dependency in its thread pool, a thread hop per dependency on every request."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query, Request

from taskpost.protocol import DEFAULT_NAMESPACE, NAMESPACE_PATTERN, Role
from taskpost.server.api.auth import PRINCIPAL_SCOPE_KEY
from taskpost.server.coordinator import Coordinator, WorkerRoute
from taskpost.server.errors import Forbidden, NotAuthenticated
from taskpost.server.services import workers
from taskpost.server.services.principals import Principal


def coordinator_of(request: Request) -> Coordinator:
    coordinator: Coordinator = request.app.state.coordinator
    return coordinator


async def get_coordinator(request: Request) -> Coordinator:
    return coordinator_of(request)


CoordinatorDep = Annotated[Coordinator, Depends(get_coordinator)]


async def get_principal(request: Request) -> Principal:
    """The caller, as server.api.auth.AuthMiddleware authenticated it before the route ran."""
    principal = request.scope.get(PRINCIPAL_SCOPE_KEY)
    if not isinstance(principal, Principal):
        # Only reachable if the middleware is not installed in front of this route.
        raise NotAuthenticated("this route needs server.api.auth.AuthMiddleware in front of it")
    return principal


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

NamespaceQuery = Annotated[
    str | None,
    Query(
        pattern=NAMESPACE_PATTERN,
        description="Admin keys only: the namespace to act on (a client key acts on its own).",
    ),
]


def _own_namespace(principal: Principal, requested: str | None) -> str:
    own = principal.namespaces[0] if principal.namespaces else DEFAULT_NAMESPACE
    if requested is not None and requested != own:
        raise Forbidden(f"a client key acts on its own namespace {own!r} only")
    return own


async def job_scope(principal: ClientDep, namespace: NamespaceQuery = None) -> str | None:
    """The namespace whose jobs the caller reads: its own (client), or ``?namespace=``/all (admin)."""
    if principal.role is Role.ADMIN:
        return namespace
    return _own_namespace(principal, namespace)


async def target_namespace(principal: ClientDep, namespace: NamespaceQuery = None) -> str:
    """The namespace new jobs and uploads go into: the client's own, or the admin's choice."""
    if principal.role is Role.ADMIN:
        return namespace or DEFAULT_NAMESPACE
    return _own_namespace(principal, namespace)


JobScopeDep = Annotated[str | None, Depends(job_scope)]
"""None: every namespace (an admin without ``?namespace=``)."""
TargetNamespaceDep = Annotated[str, Depends(target_namespace)]


async def get_worker_route(worker_id: str, coord: CoordinatorDep, principal: WorkerDep) -> WorkerRoute:
    return await workers.route_for(coord, worker_id, principal.key_id, principal.role is Role.ADMIN)


WorkerRouteDep = Annotated[WorkerRoute, Depends(get_worker_route)]
