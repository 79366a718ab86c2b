"""``GET /metrics``: the Prometheus text format, for a ``metrics`` or an ``admin`` key.

It lives outside ``/api/v1``, where server.api.auth.AuthMiddleware does not reach, so it
authenticates by itself, from the same headers, with the same error bodies and the
coordinator's shared failure limiter: a wrong key here costs as much as anywhere else.
"""

from __future__ import annotations

import logging
import math

from fastapi import APIRouter, FastAPI, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST

from taskpost.protocol import Role
from taskpost.server.api.auth import presented_key
from taskpost.server.api.deps import CoordinatorDep
from taskpost.server.api.errors import error_response
from taskpost.server.coordinator import Coordinator
from taskpost.server.errors import Forbidden, TooManyAuthFailures
from taskpost.server.services import counts, principals
from taskpost.server.services.auth_limits import AuthFailureLimiter

logger = logging.getLogger(__name__)

router = APIRouter(include_in_schema=False)
SCRAPE_ROLES = frozenset({Role.METRICS, Role.ADMIN})


def install(app: FastAPI, coord: Coordinator) -> None:
    """Serve ``/metrics`` on ``app``; failed keys spend the coordinator's shared limiter."""
    app.state.metrics_auth_limiter = coord.auth_limiter
    app.include_router(router)


@router.get("/metrics")
async def metrics(request: Request, coord: CoordinatorDep) -> Response:
    refusal = await _refusal(request, coord)
    if refusal is not None:
        return refusal
    # Gauges are set here, in the request: collecting is synchronous and must not query.
    await counts.refresh_metrics(coord)
    return Response(coord.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)


async def _refusal(request: Request, coord: Coordinator) -> Response | None:
    """None when the caller may scrape; else the answer: 429, 401 or 403."""
    limiter: AuthFailureLimiter = request.app.state.metrics_auth_limiter
    address = request.client.host if request.client else "unknown"
    wait_s = limiter.retry_after_s(address)
    if wait_s is not None:
        return error_response(
            TooManyAuthFailures.status_code,
            TooManyAuthFailures.code,
            TooManyAuthFailures.__doc__ or "",
            headers={"Retry-After": str(max(1, math.ceil(wait_s)))},
        )
    try:
        principal = await principals.authenticate(coord, presented_key(request.scope))
    except principals.AuthenticationFailed as exc:
        logger.warning(
            "authentication failed from %s on /metrics: %s",
            address,
            exc.reason,
            extra={"client": address, "reason": exc.reason, "action": "auth_failed"},
        )
        limiter.record_failure(address)
        return error_response(exc.status_code, exc.code, exc.message, headers={"WWW-Authenticate": "Bearer"})
    if principal.role not in SCRAPE_ROLES:
        message = f"a {principal.role.value} key may not read /metrics; it needs a metrics or admin key"
        return error_response(Forbidden.status_code, Forbidden.code, message)
    return None
