"""A small synchronous client of the coordinator's HTTP API, for the CLI."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from taskpost.protocol import API_PREFIX


class CliError(Exception):
    """An error to print and exit on."""


class RemoteCoordinator:
    def __init__(self, server_url: str, api_key: str, timeout: float = 30.0) -> None:
        self._client = httpx.Client(
            base_url=server_url.rstrip("/") + API_PREFIX,
            headers={"Authorization": f"Bearer {api_key}"},
            timeout=timeout,
        )

    def __enter__(self) -> RemoteCoordinator:
        return self

    def __exit__(self, *exc: object) -> None:
        self._client.close()

    def download(self, path: str, dest: Path) -> None:
        """Stream a file from the API to ``dest``, whatever its content type."""
        try:
            with self._client.stream("GET", path) as response:
                if response.status_code >= 400:
                    response.read()
                    raise CliError(f"{response.status_code}: {response.text}")
                with dest.open("wb") as handle:
                    for chunk in response.iter_bytes():
                        handle.write(chunk)
        except httpx.HTTPError as exc:
            raise CliError(f"cannot reach the coordinator at {self._client.base_url}: {exc}") from exc

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._client.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise CliError(f"cannot reach the coordinator at {self._client.base_url}: {exc}") from exc
        if response.status_code >= 400:
            try:
                message = response.json()["error"]["message"]
            except Exception:
                message = response.text
            raise CliError(f"{response.status_code}: {message}")
        if response.status_code == 204 or not response.content:
            return None
        if response.headers.get("content-type", "").startswith("application/json"):
            return response.json()
        return response.content
