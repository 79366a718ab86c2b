"""Helpers for tests of files: uploads, outputs and what the blob directory holds."""

from __future__ import annotations

import hashlib
from typing import Any

import httpx
from sqlalchemy import select

from taskpost.protocol import API_PREFIX
from taskpost.server.services import blob_gc
from taskpost.server.services.blob_refs import BLOBS
from tests.server.conftest import Api


def blob_files(api: Api) -> set[str]:
    """The keys of the blobs in the blob directory (finished files only)."""
    root = api.coord.settings.resolved_blob_dir()
    return {path.name for path in root.rglob("*") if path.is_file()}


async def refs(api: Api) -> dict[str, int]:
    """Reference count of every blob row."""
    async with api.coord.db.read() as conn:
        return {row.key: row.refs for row in await conn.execute(select(BLOBS))}


async def upload(api: Api, data: bytes, name: str = "in.txt", **headers: str) -> httpx.Response:
    return await api.http.post(
        f"{API_PREFIX}/uploads",
        params={"name": name},
        content=data,
        headers={**api.auth("client"), **headers},
    )


async def upload_id(api: Api, data: bytes, name: str = "in.txt") -> str:
    response = await upload(api, data, name)
    assert response.status_code == 201, response.text
    uploaded: str = response.json()["upload_id"]
    return uploaded


async def put_output(
    api: Api, task: dict[str, Any], name: str, data: bytes, sha256: str | None = None
) -> httpx.Response:
    headers = {
        **api.auth("worker"),
        "X-Lease-Token": task["lease_token"],
        "X-Content-SHA256": sha256 or hashlib.sha256(data).hexdigest(),
    }
    return await api.http.put(
        f"{API_PREFIX}/tasks/{task['job_id']}/outputs/{name}", content=data, headers=headers
    )


async def output(api: Api, job_id: str, name: str) -> httpx.Response:
    return await api.http.get(f"{API_PREFIX}/jobs/{job_id}/outputs/{name}", headers=api.auth("client"))


async def collect(api: Api) -> blob_gc.Collected:
    return await blob_gc.collect(api.coord)
