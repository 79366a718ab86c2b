"""The methods a path allows, for the ``Allow`` header of a 405, as the OpenAPI document lists them.

Starlette would send ``POST /api/v1/jobs/batch`` and ``GET /api/v1/jobs/{job_id}`` with job id
``batch`` to two different routes, so probing the router says "GET, POST" for ``/jobs/batch``.
But ``/jobs/batch`` is its own resource, and OpenAPI matches a concrete path before a templated
one: the document's path item that matches with the fewest parameters is the resource, and its
operations are what it allows.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

_METHODS = ("get", "head", "post", "put", "patch", "delete", "options", "trace")
_PARAMETER = re.compile(r"\{[^/{}]+\}")


def _template_regex(template: str) -> re.Pattern[str]:
    literal_parts = _PARAMETER.split(template)
    return re.compile("[^/]+".join(re.escape(part) for part in literal_parts))


def documented_methods(paths: Mapping[str, Any], path: str) -> list[str] | None:
    """The methods of the path item that ``path`` belongs to; None when no documented path matches."""
    matches = [
        (len(_PARAMETER.findall(template)), item)
        for template, item in paths.items()
        if _template_regex(template).fullmatch(path)
    ]
    if not matches:
        return None
    fewest = min(count for count, _ in matches)
    methods = {m for count, item in matches if count == fewest for m in item if m in _METHODS}
    return [m.upper() for m in _METHODS if m in methods]
