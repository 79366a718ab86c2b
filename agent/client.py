"""``CoordinatorClient``: the one module of the agent that knows the coordinator's URLs.

Every method makes one request and maps failures onto ``agent.errors``; retry policy lives
with the callers (run loop, outbox), which know how long a retry is still worth it.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import time
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any, NoReturn, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ValidationError

from taskpost.agent.errors import (
    AuthError,
    CoordinatorError,
    CoordinatorUnavailable,
    IntegrityError,
    LeaseLost,
    WorkerUnknown,
)
from taskpost.agent.workdir import open_private
from taskpost.protocol import (
    API_PREFIX,
    LEASE_HEADER,
    SHA256_HEADER,
    ClaimRequest,
    ClaimResponse,
    CompleteRequest,
    CompleteResponse,
    ErrorBody,
    FileInfo,
    HeartbeatRequest,
    HeartbeatResponse,
    ReleaseRequest,
    TaskCompletion,
    TaskProgress,
    WorkerRegister,
    WorkerRegistered,
)

logger = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)
CHUNK = 1 << 20
LONG_POLL_MARGIN_S = 15.0
"""Extra read time on a claim beyond the hold the agent asked for."""
_SECONDS = re.compile(r"[0-9]+")


def _error_fields(response: httpx.Response) -> tuple[str | None, str]:
    try:
        body = ErrorBody.model_validate(response.json())
    except (ValueError, ValidationError):
        return None, response.text[:200] or response.reason_phrase
    return body.error.code, body.error.message


def retry_after_s(response: httpx.Response) -> float | None:
    """The answer's ``Retry-After`` in seconds (from a number of seconds or an HTTP date)."""
    value = response.headers.get("Retry-After", "").strip()
    if _SECONDS.fullmatch(value):
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def raise_for_response(response: httpx.Response) -> None:
    """Map a non-2xx answer to the agent's exceptions."""
    status = response.status_code
    if status < 400:
        return
    code, message = _error_fields(response)
    what = f"{response.request.method} {response.request.url.path}"
    if status == 401 and code == "key_expired":
        raise AuthError(
            f"{what}: 401 key_expired: {message} (this agent's key no longer works: issue a new worker"
            " key, or rotate this one, and set TASKPOST_API_KEY to it)"
        )
    if status in (401, 403):
        raise AuthError(f"{what}: {status} {message} (check TASKPOST_API_KEY)")
    if status == 404 and code == "worker_not_found":
        raise WorkerUnknown(message)
    if status == 409 and code == "stale_lease":
        raise LeaseLost(message)
    if status >= 500 or status in (408, 429):
        wait_s = retry_after_s(response)
        after = f" (retry after {wait_s:.0f}s)" if wait_s is not None else ""
        raise CoordinatorUnavailable(f"{what}: {status} {message}{after}", retry_after_s=wait_s)
    raise CoordinatorError(f"{what}: {status} {message}", status=status, code=code)


def file_digest(path: Path) -> tuple[str, int]:
    """The sha256 (hex) and size of a file."""
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(CHUNK), b""):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


async def _file_chunks(path: Path) -> AsyncIterator[bytes]:
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            yield chunk


class CoordinatorClient:
    """Async client of the coordinator's agent API; one keep-alive connection pool."""

    def __init__(
        self,
        server_url: str,
        api_key: str,
        *,
        timeout_s: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
        on_exchange: Callable[[bool], None] | None = None,
    ) -> None:
        self.on_exchange = on_exchange
        """Called after every request with whether the coordinator answered it (below 500)."""
        self.base_url = server_url.rstrip("/") + API_PREFIX
        self._timeout = httpx.Timeout(timeout_s, connect=min(timeout_s, 10.0))
        self._not_before = 0.0
        """``time.monotonic()`` before which no request is sent (the last ``Retry-After``)."""
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {api_key}"},
            timeout=self._timeout,
            transport=transport,
            limits=httpx.Limits(max_keepalive_connections=32, keepalive_expiry=60.0),
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> CoordinatorClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- plumbing ---------------------------------------------------------------------------
    def _report(self, answered: bool) -> None:
        if self.on_exchange is not None:
            self.on_exchange(answered)

    def _hold_off(self, method: str, url: str) -> None:
        """Refuse, without sending it, a request the coordinator asked not to get yet."""
        left = self._not_before - time.monotonic()
        if left > 0:
            raise CoordinatorUnavailable(
                f"{method} {url}: not sent, the coordinator asked to wait {left:.1f}s more (Retry-After)",
                retry_after_s=left,
            )

    def _answered(self, response: httpx.Response) -> None:
        """Report the exchange and raise for an error answer, remembering its ``Retry-After``."""
        self._report(response.status_code < 500)
        try:
            raise_for_response(response)
        except CoordinatorUnavailable as exc:
            if exc.retry_after_s:
                self._not_before = max(self._not_before, time.monotonic() + exc.retry_after_s)
            raise

    async def _send(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        self._hold_off(method, url)
        try:
            response = await self._http.request(method, url, **kwargs)
        except httpx.TransportError as exc:
            self._report(False)
            raise CoordinatorUnavailable(f"{method} {url}: {type(exc).__name__}: {exc}") from exc
        self._answered(response)
        return response

    async def _json(self, method: str, url: str, model: type[M], **kwargs: Any) -> M:
        response = await self._send(method, url, **kwargs)
        try:
            return model.model_validate(response.json())
        except (ValueError, ValidationError) as exc:
            raise CoordinatorError(
                f"{method} {url}: unexpected answer: {exc}", status=response.status_code
            ) from exc

    @staticmethod
    def _body(model: BaseModel) -> dict[str, Any]:
        return model.model_dump(mode="json")

    # -- workers ----------------------------------------------------------------------------
    async def register(self, payload: WorkerRegister) -> WorkerRegistered:
        return await self._json("POST", "/workers/register", WorkerRegistered, json=self._body(payload))

    async def claim(
        self,
        worker_id: str,
        max_tasks: int,
        wait_s: float | None,
        completions: Sequence[TaskCompletion] = (),
    ) -> ClaimResponse:
        """Long-poll for up to ``max_tasks`` tasks; an empty response when the hold ran out (204)."""
        request = ClaimRequest(max_tasks=max_tasks, wait_s=wait_s, completions=list(completions))
        hold = wait_s or 0.0
        timeout = httpx.Timeout(
            self._timeout.read, connect=self._timeout.connect, read=hold + LONG_POLL_MARGIN_S
        )
        response = await self._send(
            "POST", f"/workers/{quote(worker_id, safe='')}/claim", json=self._body(request), timeout=timeout
        )
        if response.status_code == 204:
            return ClaimResponse(tasks=[])
        try:
            return ClaimResponse.model_validate(response.json())
        except (ValueError, ValidationError) as exc:
            raise CoordinatorError(f"claim: unexpected answer: {exc}", status=response.status_code) from exc

    async def complete(self, worker_id: str, completions: Sequence[TaskCompletion]) -> CompleteResponse:
        request = CompleteRequest(completions=list(completions))
        return await self._json(
            "POST",
            f"/workers/{quote(worker_id, safe='')}/complete",
            CompleteResponse,
            json=self._body(request),
        )

    async def heartbeat(self, worker_id: str, tasks: Sequence[TaskProgress]) -> HeartbeatResponse:
        request = HeartbeatRequest(tasks=list(tasks))
        return await self._json(
            "POST",
            f"/workers/{quote(worker_id, safe='')}/heartbeat",
            HeartbeatResponse,
            json=self._body(request),
        )

    async def release(
        self, worker_id: str, tasks: Sequence[TaskProgress], reason: str = "released by worker"
    ) -> CompleteResponse:
        request = ReleaseRequest(tasks=list(tasks), reason=reason)
        return await self._json(
            "POST",
            f"/workers/{quote(worker_id, safe='')}/release",
            CompleteResponse,
            json=self._body(request),
        )

    async def deregister(self, worker_id: str) -> None:
        await self._send("DELETE", f"/workers/{quote(worker_id, safe='')}")

    # -- files ------------------------------------------------------------------------------
    async def download_input(
        self, job_id: str, name: str, lease_token: str, dest: Path, *, sha256: str | None = None
    ) -> int:
        """Stream an input to ``dest`` (a new 0600 file); raises ``IntegrityError`` (and removes
        it) on a digest mismatch.

        Returns the number of bytes written.
        """
        url = f"/tasks/{quote(job_id, safe='')}/inputs/{quote(name, safe='')}"
        digest = hashlib.sha256()
        size = 0
        self._hold_off("GET", url)
        try:
            async with self._http.stream("GET", url, headers={LEASE_HEADER: lease_token}) as response:
                if response.status_code >= 400:
                    await response.aread()
                self._answered(response)
                with open_private(dest) as fh:
                    async for chunk in response.aiter_bytes(CHUNK):
                        digest.update(chunk)
                        size += len(chunk)
                        fh.write(chunk)
        except httpx.TransportError as exc:
            self._report(False)
            _unlink(dest)
            raise CoordinatorUnavailable(f"GET {url}: {type(exc).__name__}: {exc}") from exc
        except BaseException:
            _unlink(dest)
            raise
        if sha256 is not None and digest.hexdigest() != sha256.lower():
            _unlink(dest)
            _integrity(name, sha256, digest.hexdigest())
        return size

    async def upload_output(self, job_id: str, name: str, lease_token: str, path: Path) -> FileInfo:
        """Stream a file to the coordinator with its sha256 in ``X-Content-SHA256``."""
        url = f"/tasks/{quote(job_id, safe='')}/outputs/{quote(name, safe='')}"
        sha256, size = await asyncio.to_thread(file_digest, path)
        headers = {
            LEASE_HEADER: lease_token,
            SHA256_HEADER: sha256,
            "Content-Length": str(size),
            "Content-Type": "application/octet-stream",
        }
        return await self._json("PUT", url, FileInfo, content=_file_chunks(path), headers=headers)


def _unlink(path: Path) -> None:
    path.unlink(missing_ok=True)


def _integrity(name: str, expected: str, got: str) -> NoReturn:
    raise IntegrityError(f"input {name!r}: sha256 {got} does not match the announced {expected}")
