"""The dashboard's forms (POST): sign in and out, cancel and requeue, drain, requeue dead jobs.

Every form but the sign-in one carries the session's CSRF token; the sign-in form carries a
double-submit token (the same random value in a cookie and a hidden field). Each action answers
with a redirect (303) to the page it came from, so a reload never sends it again.
"""

from __future__ import annotations

import logging
import math

from fastapi import APIRouter, Request
from pydantic import ValidationError
from starlette.responses import RedirectResponse, Response

from taskpost.protocol import BulkRequeue
from taskpost.server.api.deps import CoordinatorDep
from taskpost.server.dashboard import sessions
from taskpost.server.dashboard.web import (
    CsrfRefused,
    DashboardRoute,
    VisitorDep,
    checked_form,
    form,
    limiter,
    login_page,
    safe_next,
    set_cookie,
)
from taskpost.server.errors import Forbidden, InvalidParams
from taskpost.server.services import jobs, principals, queues, workers

logger = logging.getLogger(__name__)
router = APIRouter(prefix="/dashboard", route_class=DashboardRoute, include_in_schema=False)


def _back(to: str) -> RedirectResponse:
    return RedirectResponse(to, status_code=303)


@router.post("/login")
async def login(request: Request, coord: CoordinatorDep) -> Response:
    fields = await form(request)
    if not sessions.tokens_match(request.cookies.get(sessions.LOGIN_COOKIE) or "", fields.get("csrf")):
        raise CsrfRefused("the sign-in form expired or came from another page: load it again and retry")
    next_path = safe_next(fields.get("next"))
    failures = limiter(request)
    address = request.client.host if request.client else "unknown"
    wait_s = failures.retry_after_s(address)
    if wait_s is not None:
        error = f"Too many failed sign-ins from this address: try again in {math.ceil(wait_s)} s."
        return login_page(request, coord, 429, error=error, next_path=next_path)
    try:
        principal = await principals.authenticate(coord, fields.get("api_key", "").strip() or None)
    except principals.AuthenticationFailed as exc:
        logger.warning(
            "dashboard sign-in failed from %s: %s",
            address,
            exc.reason,
            extra={"client": address, "reason": exc.reason, "action": "dashboard_auth_failed"},
        )
        failures.record_failure(address)
        return login_page(request, coord, 401, error=exc.message, next_path=next_path)
    if principal.role not in sessions.DASHBOARD_ROLES:
        error = f"A {principal.role.value} key cannot sign in to the dashboard: use an admin or client key."
        return login_page(request, coord, 403, error=error, next_path=next_path)
    token = await sessions.create(coord, principal)
    response = _back(next_path)
    set_cookie(
        response, request, coord, sessions.SESSION_COOKIE, token, int(coord.settings.dashboard_session_s)
    )
    response.delete_cookie(sessions.LOGIN_COOKIE, path="/dashboard")
    return response


@router.post("/logout")
async def logout(request: Request, coord: CoordinatorDep, visitor: VisitorDep) -> Response:
    await checked_form(request, visitor)
    await sessions.end(coord, visitor.session_id)
    response = _back("/dashboard/login")
    response.delete_cookie(sessions.SESSION_COOKIE, path="/dashboard")
    return response


@router.post("/jobs/{job_id}/cancel")
async def cancel(job_id: str, request: Request, coord: CoordinatorDep, visitor: VisitorDep) -> Response:
    fields = await checked_form(request, visitor)
    job = await jobs.cancel(coord, job_id, visitor.scope)
    return _back(safe_next(fields.get("back") or f"/dashboard/jobs/{job.id}"))


@router.post("/jobs/{job_id}/requeue")
async def requeue(job_id: str, request: Request, coord: CoordinatorDep, visitor: VisitorDep) -> Response:
    fields = await checked_form(request, visitor)
    job = await jobs.requeue(coord, job_id, visitor.scope)
    return _back(safe_next(fields.get("back") or f"/dashboard/jobs/{job.id}"))


@router.post("/agents/{worker_id}/{action}")
async def drain(
    worker_id: str, action: str, request: Request, coord: CoordinatorDep, visitor: VisitorDep
) -> Response:
    await checked_form(request, visitor)
    if action not in ("drain", "undrain"):
        raise InvalidParams("the action must be drain or undrain", field="action")
    if not visitor.is_admin:
        raise Forbidden("only an admin key may drain or undrain agents")
    await workers.set_draining(coord, worker_id, action == "drain")
    return _back("/dashboard/agents")


@router.post("/dead/requeue")
async def requeue_dead(request: Request, coord: CoordinatorDep, visitor: VisitorDep) -> Response:
    """Requeue the dead jobs (of one error kind's type, if the form names one), at most
    MAX_BULK_JOBS per press, like ``taskpost jobs requeue --dead``."""
    fields = await checked_form(request, visitor)
    try:
        request_body = BulkRequeue.model_validate({"states": ["dead"], "type": fields.get("type") or None})
    except ValidationError:
        raise InvalidParams("type must be a job type name", field="type") from None
    result = await queues.requeue(coord, request_body, visitor.scope)
    more = "&more=1" if result.more else ""
    return _back(f"/dashboard/dead?requeued={result.count}{more}")
