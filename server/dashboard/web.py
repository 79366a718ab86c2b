"""The plumbing every dashboard route shares: the visitor, forms, CSRF, errors as pages, headers."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any
from urllib.parse import parse_qs

from fastapi import Depends, Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.responses import JSONResponse, Response

from taskpost.server.api.deps import coordinator_of
from taskpost.server.coordinator import Coordinator
from taskpost.server.dashboard import sessions, views
from taskpost.server.dashboard.sessions import Visitor
from taskpost.server.errors import BadRequest, Forbidden, TaskpostError
from taskpost.server.services.auth_limits import AuthFailureLimiter

MAX_FORM_BYTES = 16 * 1024


class SignInNeeded(Exception):
    """No valid session: the visitor gets the sign-in form."""


class CsrfRefused(Forbidden):
    """The form's CSRF token is missing or wrong: reload the page and send the form again."""

    code = "csrf_refused"


def limiter(request: Request) -> AuthFailureLimiter:
    found: AuthFailureLimiter = request.app.state.dashboard_limiter
    return found


def cookie_secure(request: Request, coord: Coordinator) -> bool:
    configured = coord.settings.dashboard_secure_cookie
    return configured if configured is not None else request.url.scheme == "https"


def set_cookie(
    response: Response, request: Request, coord: Coordinator, name: str, value: str, max_age: int
) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path="/dashboard",
        httponly=True,
        samesite="strict",
        secure=cookie_secure(request, coord),
    )


async def get_visitor(request: Request) -> Visitor:
    coord = coordinator_of(request)
    visitor = await sessions.visitor(coord, request.cookies.get(sessions.SESSION_COOKIE))
    if visitor is None:
        raise SignInNeeded
    return visitor


VisitorDep = Annotated[Visitor, Depends(get_visitor)]


async def form(request: Request) -> dict[str, str]:
    """A url-encoded form's fields (the first value of each); at most MAX_FORM_BYTES."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise BadRequest(f"the form is larger than {MAX_FORM_BYTES} bytes")
    if not body:
        return {}
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        raise BadRequest("send the form as application/x-www-form-urlencoded")
    fields = parse_qs(body.decode("utf-8", errors="replace"), keep_blank_values=True)
    return {name: values[0] for name, values in fields.items()}


async def checked_form(request: Request, visitor: Visitor) -> dict[str, str]:
    """The form, once its ``csrf`` field matches the visitor's session."""
    fields = await form(request)
    if not visitor.csrf_ok(fields.get("csrf")):
        raise CsrfRefused
    return fields


def safe_next(value: str | None) -> str:
    """Where to go after signing in: a dashboard path only, never another site."""
    if value and value.startswith("/dashboard") and "//" not in value and "\\" not in value:
        return value
    return "/dashboard"


def login_page(
    request: Request,
    coord: Coordinator,
    status_code: int = 200,
    error: str | None = None,
    next_path: str = "",
) -> Response:
    """The sign-in form, with a fresh double-submit token (cookie and hidden field) if it has none."""
    token = request.cookies.get(sessions.LOGIN_COOKIE) or sessions.new_token()
    wanted = next_path or (request.url.path + (f"?{request.url.query}" if request.url.query else ""))
    response = views.page(
        "login.html", status_code=status_code, csrf=token, next=safe_next(wanted), error=error, visitor=None
    )
    set_cookie(response, request, coord, sessions.LOGIN_COOKIE, token, max_age=3600)
    return response


def _wants_json(request: Request) -> bool:
    return request.url.path.endswith(".json")


async def _refusal(request: Request, exc: Exception) -> Response:
    if isinstance(exc, SignInNeeded):
        if _wants_json(request):
            return JSONResponse({"code": "not_signed_in", "message": "sign in again"}, status_code=401)
        return login_page(request, coordinator_of(request), status_code=401)
    if isinstance(exc, RequestValidationError):
        fields = ", ".join(".".join(str(p) for p in error["loc"][1:]) for error in exc.errors())
        status, message = 422, f"invalid value of: {fields}"
    else:
        assert isinstance(exc, TaskpostError)
        status, message = exc.status_code, exc.message
        field = (exc.details or {}).get("field")
        if field:
            message = f"{message} (field: {field})"
    if _wants_json(request):
        return JSONResponse({"message": message}, status_code=status)
    return views.page("error.html", status_code=status, status=status, message=message, visitor=None)


class DashboardRoute(APIRoute):
    """Renders refusals as pages (the sign-in form for a visitor without a session) and puts the
    security headers on every response."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def run(request: Request) -> Response:
            try:
                response = await handler(request)
            except (SignInNeeded, TaskpostError, RequestValidationError) as exc:
                response = await _refusal(request, exc)
            return views.secure(response)

        return run
