"""Authentication before anything else: a pure ASGI middleware in front of every ``/api/v1`` route.

It reads the key from the request's headers only, so an unauthenticated request is answered
(401, or 429 past the failure limit) before one byte of its body is read or parsed. The caller's
``Principal`` goes into the ASGI scope, where ``server.api.deps`` picks it up.
"""

from __future__ import annotations

import logging
import math

from starlette.types import ASGIApp, Receive, Scope, Send

from taskpost.protocol import API_PREFIX
from taskpost.server.api.errors import database_unavailable_response, error_response
from taskpost.server.coordinator import Coordinator
from taskpost.server.errors import DatabaseUnavailable, TooManyAuthFailures
from taskpost.server.services import principals

logger = logging.getLogger(__name__)

PRINCIPAL_SCOPE_KEY = "taskpost.principal"
"""Where the middleware leaves the authenticated ``Principal`` in the request's scope."""


class AuthMiddleware:
    """Authenticates every request under ``/api/v1`` from its headers, before the app runs."""

    def __init__(self, app: ASGIApp, coordinator: Coordinator, prefix: str = API_PREFIX) -> None:
        self.app = app
        self.coordinator = coordinator
        self.prefix = prefix
        # Shared with the dashboard's sign-in and /metrics: a wrong key costs the same everywhere.
        self.limiter = coordinator.auth_limiter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if scope["type"] != "http" or not (path == self.prefix or path.startswith(self.prefix + "/")):
            await self.app(scope, receive, send)
            return
        address = _peer(scope)
        wait_s = self.limiter.retry_after_s(address)
        if wait_s is not None:
            retry_after = str(max(1, math.ceil(wait_s)))
            response = error_response(
                TooManyAuthFailures.status_code,
                TooManyAuthFailures.code,
                TooManyAuthFailures.__doc__ or "",
                headers={"Retry-After": retry_after},
            )
            await response(scope, receive, send)
            return
        try:
            principal = await principals.authenticate(self.coordinator, presented_key(scope))
        except principals.AuthenticationFailed as exc:
            self._log_failure(address, exc.reason)
            response = error_response(
                exc.status_code, exc.code, exc.message, headers={"WWW-Authenticate": "Bearer"}
            )
            await response(scope, receive, send)
            return
        except DatabaseUnavailable as exc:  # raised here, before the app's error handlers
            await database_unavailable_response(exc)(scope, receive, send)
            return
        scope[PRINCIPAL_SCOPE_KEY] = principal
        await self.app(scope, receive, send)

    def _log_failure(self, address: str, reason: str) -> None:
        # The reason names a known key by its stored prefix at most, never by what was sent.
        logger.warning(
            "authentication failed from %s: %s",
            address,
            reason,
            extra={"client": address, "reason": reason, "action": "auth_failed"},
        )
        if self.limiter.record_failure(address):
            logger.warning(
                "too many failed authentications from %s: refusing its requests with 429 for now",
                address,
                extra={"client": address, "action": "auth_rate_limited"},
            )


def _peer(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


def presented_key(scope: Scope) -> str | None:
    """The key in ``Authorization: Bearer`` or ``X-API-Key``; two different ones are refused, never
    one of them picked: a request must not pass on one key while it also shows a wrong one."""
    authorization: str | None = None
    x_api_key: str | None = None
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            authorization = value.decode("latin-1")
        elif name == b"x-api-key":
            x_api_key = value.decode("latin-1")
    keys = {key for key in (_bearer_token(authorization), (x_api_key or "").strip()) if key}
    if len(keys) > 1:
        raise principals.AuthenticationFailed(
            "the request carries two different API keys (Authorization and X-API-Key): send one",
            "two different keys",
        )
    return keys.pop() if keys else None


def _bearer_token(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None
