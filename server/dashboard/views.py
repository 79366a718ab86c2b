"""Rendering: the Jinja2 templates (autoescaped), server-drawn SVG sparklines, security headers."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from functools import cache
from importlib import resources
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.responses import HTMLResponse, Response

SECURITY_HEADERS = {
    # No inline script or style anywhere: every asset is a file the coordinator serves.
    "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'; form-action 'self'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
STATIC_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}


def _when(value: datetime | float | None) -> str:
    if value is None:
        return ""
    if isinstance(value, (int, float)):
        value = datetime.fromtimestamp(value, UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)


@cache
def environment() -> Environment:
    env = Environment(
        loader=PackageLoader("taskpost.server.dashboard", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = _when
    env.filters["pretty"] = _pretty
    env.globals["sparkline"] = sparkline
    return env


def page(template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    html = environment().get_template(template).render(**context)
    return HTMLResponse(html, status_code=status_code)


def secure(response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def sparkline(values: list[int], width: int = 240, height: int = 40) -> str:
    """The points of an SVG polyline for ``values`` (the template escapes nothing here: numbers)."""
    if not values:
        return ""
    top = max(max(values), 1)
    step = width / max(len(values) - 1, 1)
    return " ".join(
        f"{index * step:.1f},{height - 2 - (value / top) * (height - 4):.1f}"
        for index, value in enumerate(values)
    )


@cache
def static_file(name: str) -> tuple[bytes, str] | None:
    """A file of dashboard/static and its ETag; None when there is none of that name."""
    suffix = "." + name.rpartition(".")[2]
    if "/" in name or "\\" in name or name.startswith(".") or suffix not in STATIC_TYPES:
        return None
    resource = resources.files("taskpost.server.dashboard").joinpath("static", name)
    if not resource.is_file():
        return None
    body = resource.read_bytes()
    return body, '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
