"""The OpenAPI document, made to tell the truth about what the routes answer.

FastAPI's generated document knows neither the auth middleware nor the one error shape. This
module post-processes it once: it declares the API-key security schemes on every ``/api/v1``
operation, lists on each operation the error statuses it can answer, all with ``ErrorBody``,
moves the ``$defs`` of schemas that routes embed themselves (``openapi_extra``) into
``components/schemas``, where their ``$ref`` resolve, and takes ``null`` out of the schemas of
optional parameters.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from fastapi import FastAPI

from taskpost.protocol import API_PREFIX, ErrorBody, JobCreate

SECURITY_SCHEMES: dict[str, dict[str, str]] = {
    "bearerKey": {
        "type": "http",
        "scheme": "bearer",
        "description": "An API key: `Authorization: Bearer KEY`.",
    },
    "apiKeyHeader": {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
        "description": "The same API key as a header, for clients that cannot set Authorization.",
    },
}
"""Either scheme authenticates a request (alternatives, not both)."""

ERROR_DESCRIPTIONS = {
    400: "Malformed body (unreadable JSON or multipart).",
    401: "Missing, unknown, revoked or expired API key (code key_expired when expired).",
    403: "This key's role or namespace may not do this.",
    404: "No such job, agent, key, file or upload (a job of another namespace included).",
    409: "Conflict with the current state: a stale lease, a job in the wrong state, a key revoking itself.",
    413: "The body is over the size limit.",
    422: "Invalid parameters or body; the details name each offending field.",
    429: "Too many failed authentications from this address; retry after Retry-After seconds.",
    503: "The coordinator cannot serve the request now.",
}

_CONFLICTS = {
    ("post", "/jobs/{job_id}/cancel"),
    ("post", "/jobs/{job_id}/requeue"),
    ("get", "/tasks/{job_id}/inputs/{name}"),
    ("put", "/tasks/{job_id}/outputs/{name}"),
    ("delete", "/keys/{key_id}"),
}
"""Operations (relative to /api/v1) that answer 409."""
_UPLOAD_REFERENCES = {("post", "/jobs"), ("post", "/jobs/batch")}
"""Operations that name uploads by id, and answer 404 for an unknown one."""
_BODY_METHODS = {"post", "put", "patch"}

RAW_BODY: dict[str, Any] = {
    "requestBody": {
        "description": "The file's bytes, streamed as they are.",
        "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
    }
}
"""``openapi_extra`` of a route that reads its body as a file (the route has no body parameter)."""


def job_submit_body() -> dict[str, Any]:
    """``openapi_extra`` of ``POST /jobs``: the job as JSON, or as multipart with files."""
    job = JobCreate.model_json_schema()
    form = {
        "type": "object",
        "description": "The job JSON as the `job` field; each part with a filename becomes an input "
        "of that name (the field name is free, `file` is one).",
        "properties": {
            "job": job,
            "file": {"type": "string", "contentMediaType": "application/octet-stream"},
        },
        "required": ["job"],
        "additionalProperties": False,
    }
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": JobCreate.model_json_schema()},
                "multipart/form-data": {
                    "schema": form,
                    "encoding": {"job": {"contentType": "application/json"}},
                },
            },
        }
    }


_FASTAPI_ERROR_SCHEMAS = ("HTTPValidationError", "ValidationError")
_ERROR_REF = {"$ref": "#/components/schemas/ErrorBody"}


def install_openapi(app: FastAPI) -> None:
    """Serve the post-processed document at ``app.openapi()`` (and so at ``/openapi.json``)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            # FastAPI's own generator (it caches its result in app.openapi_schema), then ours.
            app.openapi_schema = truthful(FastAPI.openapi(app))
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def truthful(document: dict[str, Any], prefix: str = API_PREFIX) -> dict[str, Any]:
    """``document`` with security, error responses and resolvable references (changed in place)."""
    components = document.setdefault("components", {})
    schemas: dict[str, Any] = components.setdefault("schemas", {})
    _hoist_embedded_defs(document, schemas)
    for name in _FASTAPI_ERROR_SCHEMAS:
        schemas.pop(name, None)
    error_schema = ErrorBody.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(error_schema.pop("$defs", {}))
    schemas["ErrorBody"] = error_schema
    components["securitySchemes"] = SECURITY_SCHEMES
    for path, method, operation in _operations(document):
        if path.startswith(prefix + "/") or path == prefix:
            operation["security"] = [{name: []} for name in SECURITY_SCHEMES]
            statuses = _error_statuses(path.removeprefix(prefix), method, operation)
        else:
            statuses = _error_statuses_unauthenticated(operation)
        for parameter in operation.get("parameters", []):
            _drop_null(parameter)
        responses: dict[str, Any] = operation.setdefault("responses", {})
        for status in sorted(statuses):
            responses[str(status)] = _error_response(status)
    return document


def _operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document.get("paths", {}).items():
        for method, operation in item.items():
            if isinstance(operation, dict) and method in {"get", "put", "post", "delete", "patch"}:
                yield path, method, operation


def _drop_null(parameter: dict[str, Any]) -> None:
    """An optional parameter is one left out: a query string or a header cannot carry a JSON null,
    so ``anyOf [X, null]`` of a ``str | None`` parameter is just ``X``."""
    schema: dict[str, Any] = parameter.get("schema", {})
    alternatives = schema.get("anyOf")
    if not isinstance(alternatives, list) or {"type": "null"} not in alternatives:
        return
    rest = [alternative for alternative in alternatives if alternative != {"type": "null"}]
    del schema["anyOf"]
    if len(rest) == 1:
        schema.update(rest[0])
    else:
        schema["anyOf"] = rest


def _error_statuses(path: str, method: str, operation: dict[str, Any]) -> set[int]:
    """What an authenticated route can answer besides success (auth, roles, validation...)."""
    statuses = {401, 403, 429} | _error_statuses_unauthenticated(operation)
    if any(p.get("in") == "path" for p in operation.get("parameters", [])):
        statuses.add(404)
    if method in _BODY_METHODS:
        statuses.add(413)  # every body is read against a limit, whatever the route does with it
    if "requestBody" in operation:
        statuses.add(400)
    if (method, path) in _CONFLICTS:
        statuses.add(409)
    if (method, path) in _UPLOAD_REFERENCES:
        statuses.add(404)
    return statuses


def _error_statuses_unauthenticated(operation: dict[str, Any]) -> set[int]:
    takes_input = bool(operation.get("parameters")) or "requestBody" in operation
    return {422} if takes_input else set()


def _error_response(status: int) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": ERROR_DESCRIPTIONS[status],
        "content": {"application/json": {"schema": dict(_ERROR_REF)}},
    }
    if status == 429:
        response["headers"] = {
            "Retry-After": {"description": "Seconds to wait.", "schema": {"type": "integer"}}
        }
    elif status == 401:
        response["headers"] = {"WWW-Authenticate": {"schema": {"type": "string"}}}
    return response


def _hoist_embedded_defs(document: dict[str, Any], schemas: dict[str, Any]) -> None:
    """Move every ``$defs`` outside components into ``components/schemas`` and point the local
    ``#/$defs/...`` references there; a schema equal to a component becomes a ``$ref`` to it."""
    for holder in list(_schemas_with_defs(document.get("paths", {}))):
        renamed: dict[str, str] = {}
        defs: dict[str, Any] = holder.pop("$defs")
        for name, schema in defs.items():
            renamed[name] = _free_name(name, _rewrite_refs(schema, {}), schemas)
        for name, schema in defs.items():
            schemas[renamed[name]] = _rewrite_refs(schema, renamed)
        rewritten = _rewrite_refs(holder, renamed)
        holder.clear()
        title = rewritten.get("title")
        if isinstance(title, str) and schemas.get(title) == rewritten:
            holder["$ref"] = f"#/components/schemas/{title}"
        else:
            holder.update(rewritten)


def _schemas_with_defs(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        if "$defs" in node:
            yield node
            return
        for value in node.values():
            yield from _schemas_with_defs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _schemas_with_defs(item)


def _free_name(name: str, schema: Any, schemas: dict[str, Any]) -> str:
    """``name`` if it is free or already holds the same schema, else ``name-2``, ``name-3``..."""
    candidate, counter = name, 1
    while candidate in schemas and schemas[candidate] != schema:
        counter += 1
        candidate = f"{name}-{counter}"
    return candidate


def _rewrite_refs(node: Any, renamed: dict[str, str]) -> Any:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            name = ref.removeprefix("#/$defs/")
            return {**node, "$ref": f"#/components/schemas/{renamed.get(name, name)}"}
        return {key: _rewrite_refs(value, renamed) for key, value in node.items()}
    if isinstance(node, list):
        return [_rewrite_refs(item, renamed) for item in node]
    return node
