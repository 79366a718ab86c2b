"""The dashboard at ``/dashboard``: server-rendered pages behind a cookie sign-in with an API key.

``routes`` holds the pages, ``actions`` the forms, ``sessions`` the sign-in, ``queries`` what the
pages read, ``views`` the templates and headers, ``web`` what every route shares.
"""

from __future__ import annotations

from fastapi import FastAPI

from taskpost.protocol import Role
from taskpost.server.coordinator import Coordinator
from taskpost.server.dashboard import actions, routes
from taskpost.server.dashboard.sessions import DASHBOARD_ROLES

OPEN_PATHS = frozenset({"/dashboard/login", "/dashboard/static/{name}"})
"""Dashboard routes served without a session: the sign-in form and the static files."""
ADMIN_PATHS = frozenset({"/dashboard/agents/{worker_id}/{action}"})
"""Dashboard routes that refuse a client key's session (403)."""


def roles_for(path: str) -> frozenset[Role] | None:
    """The roles whose session a dashboard route serves; None: it needs no session (or is not
    the dashboard's). Kept here for docs/security.md's table (tests/docs/test_security_doc.py)."""
    if not path.startswith("/dashboard") or path in OPEN_PATHS:
        return None
    return frozenset({Role.ADMIN}) if path in ADMIN_PATHS else DASHBOARD_ROLES


def install(app: FastAPI, coord: Coordinator) -> None:
    """Add the dashboard's routes to ``app``; failed sign-ins spend the coordinator's shared limiter."""
    app.state.dashboard_limiter = coord.auth_limiter
    app.include_router(routes.router)
    app.include_router(actions.router)
