"""The OpenAPI document tells the truth: it is valid, its references resolve, it says how to
authenticate, and it lists the error answers that the routes really give, in the one error shape."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from openapi_spec_validator import validate

from protocol import API_PREFIX
from tests.server.conftest import Api

pytestmark = pytest.mark.anyio

ERROR_REF = "#/components/schemas/ErrorBody"


@pytest.fixture
async def document(api: Api) -> dict[str, Any]:
    response = await api.http.get("/openapi.json")
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


def _resolve(document: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = document
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        assert isinstance(node, dict) and part in node, f"{ref} does not resolve"
        node = node[part]
    return node


def _operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            yield path, method, operation


async def test_the_document_is_valid_and_every_reference_resolves(document: dict[str, Any]) -> None:
    validate(document)
    refs = set(_refs(document))
    assert "#/components/schemas/Priority" in refs
    for ref in refs:
        _resolve(document, ref)


async def test_the_api_key_schemes_are_declared_and_every_api_operation_needs_one(
    document: dict[str, Any],
) -> None:
    schemes = document["components"]["securitySchemes"]
    assert {"type": "http", "scheme": "bearer"}.items() <= schemes["bearerKey"].items()
    assert {"type": "apiKey", "in": "header", "name": "X-API-Key"}.items() <= schemes["apiKeyHeader"].items()
    for path, method, operation in _operations(document):
        if path.startswith(API_PREFIX):
            assert operation["security"] == [{"bearerKey": []}, {"apiKeyHeader": []}], (method, path)
        else:
            assert not operation.get("security"), (method, path)
    assert "security" not in document["paths"]["/health"]["get"]


async def test_every_api_operation_lists_its_errors_in_the_one_shape(document: dict[str, Any]) -> None:
    for path, method, operation in _operations(document):
        if not path.startswith(API_PREFIX):
            continue
        responses = operation["responses"]
        expected = {"401", "403", "429"}
        if operation.get("parameters") or "requestBody" in operation:
            expected.add("422")
        assert expected <= set(responses), (method, path, sorted(responses))
        for status, response in responses.items():
            if status.startswith(("4", "5")):
                schema = response["content"]["application/json"]["schema"]
                assert schema == {"$ref": ERROR_REF}, (method, path, status)
    assert "HTTPValidationError" not in document["components"]["schemas"]


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("post", "/jobs/batch", "413"),
        ("post", "/jobs", "413"),
        ("post", "/jobs/batch", "400"),
        ("post", "/jobs/{job_id}/cancel", "409"),
        ("post", "/jobs/{job_id}/requeue", "409"),
        ("put", "/tasks/{job_id}/outputs/{name}", "409"),
        ("get", "/jobs/{job_id}", "404"),
        ("post", "/jobs", "404"),
        ("post", "/workers/{worker_id}/claim", "404"),
    ],
)
async def test_route_specific_errors_are_listed(
    document: dict[str, Any], method: str, path: str, status: str
) -> None:
    assert status in document["paths"][API_PREFIX + path][method]["responses"]


async def test_the_single_submit_body_is_the_job_create_component(document: dict[str, Any]) -> None:
    body = document["paths"][f"{API_PREFIX}/jobs"]["post"]["requestBody"]
    assert body["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/JobCreate"}


async def test_the_answers_the_routes_give_are_the_ones_the_document_lists(
    api: Api, document: dict[str, Any]
) -> None:
    """A few real answers, each checked against its operation's declared responses."""
    client = api.auth("client")
    job_path = f"{API_PREFIX}/jobs/{(await api.submit())['id']}"
    http = api.http
    answers = [
        ("get", "/jobs/{job_id}", await http.get(job_path)),
        ("get", "/jobs/{job_id}", await http.get(f"{API_PREFIX}/jobs/nope", headers=client)),
        ("get", "/jobs", await http.get(f"{API_PREFIX}/jobs", headers=api.auth("worker"))),
        ("get", "/jobs", await http.get(f"{API_PREFIX}/jobs?limit=0", headers=client)),
        ("post", "/jobs/{job_id}/requeue", await http.post(f"{job_path}/requeue", headers=client)),
        (
            "post",
            "/jobs/batch",
            await http.post(f"{API_PREFIX}/jobs/batch", json={"jobs": []}, headers=client),
        ),
    ]
    for method, path, response in answers:
        assert response.status_code >= 400, response.text
        assert str(response.status_code) in document["paths"][API_PREFIX + path][method]["responses"]
        assert set(response.json()) == {"error"}
