"""The OpenAPI document tells the truth: it is valid, its references resolve, it says how to
authenticate, and it lists the error answers that the routes really give, in the one error shape."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate

from taskpost.protocol import API_PREFIX
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
        ("delete", "/keys/{key_id}", "409"),
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


def _validator(document: dict[str, Any], schema: dict[str, Any]) -> Draft202012Validator:
    """A validator of ``schema`` whose ``#/components/...`` references resolve in ``document``."""
    return Draft202012Validator({**schema, "components": document["components"]})


def _parameter(document: dict[str, Any], method: str, path: str, name: str) -> dict[str, Any]:
    operation = document["paths"][API_PREFIX + path][method]
    parameter: dict[str, Any] = next(p for p in operation["parameters"] if p["name"] == name)
    return parameter


async def test_no_parameter_is_declared_nullable(document: dict[str, Any]) -> None:
    """A query string or a header cannot carry a JSON null: an optional parameter is left out."""
    for path, method, operation in _operations(document):
        for parameter in operation.get("parameters", []):
            assert '"null"' not in json.dumps(parameter["schema"]), (method, path, parameter)


async def test_the_file_routes_declare_the_bodies_they_read(document: dict[str, Any]) -> None:
    binary = {"schema": {"type": "string", "format": "binary"}}
    for method, path in (("post", "/uploads"), ("put", "/tasks/{job_id}/outputs/{name}")):
        body = document["paths"][API_PREFIX + path][method]["requestBody"]
        assert body["content"] == {"application/octet-stream": binary}, (method, path)
    form = document["paths"][f"{API_PREFIX}/jobs"]["post"]["requestBody"]["content"]["multipart/form-data"]
    assert form["schema"]["properties"]["job"] == {"$ref": "#/components/schemas/JobCreate"}
    assert form["schema"]["required"] == ["job"]
    assert form["encoding"] == {"job": {"contentType": "application/json"}}


DIGEST = hashlib.sha256(b"payload").hexdigest()


@pytest.mark.parametrize(
    ("parameter", "value"),
    [
        ("cursor", "7"),
        ("cursor", "0007"),
        ("cursor", str(2**63 - 1)),
        ("cursor", str(2**63)),
        ("cursor", ""),
        ("cursor", "¹"),
        ("cursor", "-1"),
        ("name", "in.txt"),
        ("name", "a\x01b"),
        ("name", "a\\b"),
        ("name", ".."),
        ("name", "x" * 256),
        ("X-Content-SHA256", DIGEST),
        ("X-Content-SHA256", DIGEST.upper()),
        ("X-Content-SHA256", ""),
        ("X-Content-SHA256", "null"),
        ("X-Content-SHA256", DIGEST[:-1]),
    ],
)
async def test_the_document_and_the_route_agree_on_each_parameter_value(
    api: Api, document: dict[str, Any], parameter: str, value: str
) -> None:
    if parameter == "cursor":
        declared = _parameter(document, "get", "/jobs", "cursor")
        response = await api.http.get(
            f"{API_PREFIX}/jobs", params={"cursor": value}, headers=api.auth("client")
        )
    else:
        declared = _parameter(document, "post", "/uploads", parameter)
        params = {"name": value} if parameter == "name" else {}
        headers = {parameter: value} if parameter != "name" else {}
        response = await api.http.post(
            f"{API_PREFIX}/uploads",
            params=params,
            content=b"payload",
            headers={**api.auth("client"), **headers},
        )
    valid = _validator(document, declared["schema"]).is_valid(value)
    assert response.status_code < 300 if valid else response.status_code == 422, (valid, response.text)


@pytest.mark.parametrize(
    "body",
    [
        {"role": "admin"},
        {"role": "admin", "namespaces": []},
        {"role": "admin", "namespaces": ["acme"]},
        {"role": "client", "namespaces": ["acme"]},
        {"role": "client", "namespaces": ["acme", "acme"]},
        {"role": "client", "namespaces": ["acme", "beta"]},
        {"role": "worker", "namespaces": ["acme", "beta", "acme"]},
        {"role": "worker", "namespaces": ["Acme"]},
    ],
)
async def test_the_document_and_the_route_agree_on_which_keys_can_be_made(
    api: Api, document: dict[str, Any], body: dict[str, Any]
) -> None:
    valid = _validator(document, {"$ref": "#/components/schemas/KeyCreate"}).is_valid(body)
    response = await api.http.post(f"{API_PREFIX}/keys", json=body, headers=api.auth("admin"))
    assert response.status_code == (201 if valid else 422), (valid, response.text)
