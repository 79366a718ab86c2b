"""Every error answer has one JSON shape: ``{"error": {"code", "message", "details"}}``.

An error answer must always be sendable, even when it quotes a value that is not (a lone
surrogate in a field name or a message): such text is escaped, never a reason for a 500.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.routing import Match

from taskpost.protocol import ErrorBody, ErrorDetail, utf8_safe
from taskpost.server.api.allow import documented_methods
from taskpost.server.errors import DatabaseUnavailable, TaskpostError

logger = logging.getLogger(__name__)


def error_response(
    status: int,
    code: str,
    message: str,
    details: dict[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    body = ErrorBody(error=ErrorDetail(code=code, message=utf8_safe(message), details=_sendable(details)))
    return JSONResponse(status_code=status, content=body.model_dump(mode="json"), headers=headers)


def _sendable(value: Any) -> Any:
    if isinstance(value, str):
        return utf8_safe(value)
    if isinstance(value, dict):
        return {_sendable(key): _sendable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_sendable(item) for item in value]
    return value


def _field_path(location: tuple[Any, ...]) -> str:
    parts = [str(part) for part in location if part not in ("body", "query", "path", "header")]
    return ".".join(parts) or "body"


async def _on_domain_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, TaskpostError)
    return error_response(exc.status_code, exc.code, exc.message, exc.details)


def database_unavailable_response(exc: DatabaseUnavailable) -> JSONResponse:
    """503 ``database_unavailable`` with Retry-After: for the API and for middleware before it."""
    headers = {"Retry-After": str(exc.retry_after_s)}
    return error_response(exc.status_code, exc.code, exc.message, exc.details, headers=headers)


async def _on_database_unavailable(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DatabaseUnavailable)
    return database_unavailable_response(exc)


async def _on_validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = [
        {"field": _field_path(tuple(err.get("loc", ()))), "message": err.get("msg", "invalid")}
        for err in exc.errors()
    ]
    summary = "; ".join(f"{p['field']}: {p['message']}" for p in problems[:5])
    return error_response(422, "invalid_params", f"invalid request: {summary}", {"errors": problems})


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")
_HTTP_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
}


async def _on_http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        # Starlette's Allow names the methods of the first route on the path only; the path
        # items of the OpenAPI document say what each resource allows (server.api.allow).
        headers["Allow"] = ", ".join(_allowed_methods(request))
    return error_response(exc.status_code, code, str(exc.detail), headers=headers)


def _allowed_methods(request: Request) -> list[str]:
    documented = documented_methods(request.app.openapi().get("paths", {}), request.scope["path"])
    if documented is not None:
        return documented
    allowed = []
    for method in _METHODS:
        probe = {**request.scope, "method": method}
        if any(route.matches(probe)[0] is Match.FULL for route in request.app.router.routes):
            allowed.append(method)
    return allowed


async def _on_client_gone(request: Request, exc: Exception) -> JSONResponse:
    # Nobody is left to read the answer; what the request had started is undone by the code it
    # interrupted, as for any other error. A client hanging up is no fault of the coordinator.
    assert isinstance(exc, ClientDisconnect)
    logger.info(
        "the client disconnected before its request body was complete: %s %s",
        request.method,
        request.url.path,
        extra={"action": "client_disconnected"},
    )
    return error_response(400, "client_disconnected", "the request body was cut off")


async def _on_unexpected(_request: Request, exc: Exception) -> JSONResponse:
    logger.exception("unhandled error", exc_info=exc)
    return error_response(500, "internal_error", "the coordinator hit an unexpected error; see its log")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(TaskpostError, _on_domain_error)
    app.add_exception_handler(DatabaseUnavailable, _on_database_unavailable)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_error)
    app.add_exception_handler(ClientDisconnect, _on_client_gone)
    app.add_exception_handler(Exception, _on_unexpected)
