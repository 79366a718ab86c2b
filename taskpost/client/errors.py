"""Exceptions of the client library: the coordinator's error answers, and what happens on the way.

TaskpostError (code, message, status, details)
├── InvalidParams (422): the request or the job's parameters; UnknownJobType
├── Unauthorized (401)
├── Forbidden (403)
├── NotFound (404): JobNotFound, FileNotFound, UploadNotFound
├── Conflict (409): InvalidState, UploadTooSlow
├── PayloadTooLarge (413)
├── RateLimited (429)
├── ServerUnavailable (503, or the coordinator cannot be reached)
├── ServerError (any other 5xx)
├── ChecksumMismatch (a downloaded file is not what the coordinator said it is)
├── JobFailed (the job ended dead or cancelled; from result)
└── WaitTimedOut (also a TimeoutError; from wait and result)

Each class is chosen by the server's stable ``code`` first, by the HTTP status otherwise.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from taskpost.protocol import JobPublic


class TaskpostError(Exception):
    """The coordinator refused a request, or could not be reached."""

    def __init__(
        self,
        message: str,
        *,
        code: str = "client_error",
        status: int | None = None,
        details: dict[str, Any] | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status
        self.details = details
        self.retry_after_s = retry_after_s

    def __str__(self) -> str:
        return f"{self.message} ({self.code})"


class InvalidParams(TaskpostError):
    """The request or the job's parameters are invalid (422, or a malformed request: 400)."""


class UnknownJobType(InvalidParams):
    """No agent has ever registered this job type."""


class Unauthorized(TaskpostError):
    """The API key is missing or unknown (401)."""


class Forbidden(TaskpostError):
    """The API key's role or namespace may not do that (403)."""


class NotFound(TaskpostError):
    """Nothing has this id or name (404)."""


class JobNotFound(NotFound):
    """No job (visible to this key) has this id."""


class FileNotFound(NotFound):
    """The job has no file of this name."""


class UploadNotFound(NotFound):
    """No upload has this id."""


class Conflict(TaskpostError):
    """The request conflicts with the job's current state (409)."""


class InvalidState(Conflict):
    """The job is not in a state that allows this (cancel an ended job, requeue a running one)."""


class UploadTooSlow(Conflict):
    """A file took too long to arrive: send it again."""


class PayloadTooLarge(TaskpostError):
    """A file or body is larger than the coordinator accepts (413)."""


class RateLimited(TaskpostError):
    """Too many failed authentications from this address (429)."""


class ServerUnavailable(TaskpostError):
    """The coordinator cannot answer right now (503, or no connection): retried before raised."""


class ServerError(TaskpostError):
    """The coordinator hit an unexpected error (5xx)."""


class ChecksumMismatch(TaskpostError):
    """A downloaded file's SHA-256 differs from the one the coordinator announced."""


_BY_CODE: dict[str, type[TaskpostError]] = {
    "invalid_params": InvalidParams,
    "bad_request": InvalidParams,
    "unknown_job_type": UnknownJobType,
    "not_authenticated": Unauthorized,
    "forbidden": Forbidden,
    "not_found": NotFound,
    "job_not_found": JobNotFound,
    "file_not_found": FileNotFound,
    "upload_not_found": UploadNotFound,
    "conflict": Conflict,
    "invalid_state": InvalidState,
    "upload_too_slow": UploadTooSlow,
    "payload_too_large": PayloadTooLarge,
    "too_many_auth_failures": RateLimited,
    "database_unavailable": ServerUnavailable,
}

_BY_STATUS: dict[int, type[TaskpostError]] = {
    400: InvalidParams,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
    422: InvalidParams,
    429: RateLimited,
    502: ServerUnavailable,
    503: ServerUnavailable,
    504: ServerUnavailable,
}


def retry_after_s(response: httpx.Response) -> float | None:
    """The Retry-After header in seconds, when it is a number (the coordinator sends seconds)."""
    value = response.headers.get("Retry-After")
    try:
        return max(float(value), 0.0) if value is not None else None
    except ValueError:
        return None


def error_from_response(response: httpx.Response) -> TaskpostError:
    """The exception for an error answer: ``{"error": {"code", "message", "details"}}`` when the
    coordinator sent one, the status alone when something in between answered."""
    code, message, details = f"http_{response.status_code}", response.reason_phrase, None
    try:
        body = json.loads(response.content)
    except ValueError:
        body = None
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and isinstance(error.get("code"), str):
        code = error["code"]
        message = str(error.get("message") or message)
        details = error.get("details") if isinstance(error.get("details"), dict) else None
    fallback = ServerError if response.status_code >= 500 else TaskpostError
    cls = _BY_CODE.get(code) or _BY_STATUS.get(response.status_code, fallback)
    return cls(
        message or f"HTTP {response.status_code}",
        code=code,
        status=response.status_code,
        details=details,
        retry_after_s=retry_after_s(response),
    )


class JobFailed(TaskpostError):
    """The job ended without completing (dead or cancelled): ``.job`` says how."""

    def __init__(self, job: JobPublic) -> None:
        reason = f": {job.error.message}" if job.error else ""
        super().__init__(f"job {job.id} ended {job.state.value}{reason}", code=f"job_{job.state.value}")
        self.job = job


class WaitTimedOut(TaskpostError, TimeoutError):
    """The job had not ended when the wait's timeout ran out: ``.job`` is its last state."""

    def __init__(self, job: JobPublic) -> None:
        super().__init__(f"job {job.id} is still {job.state.value}", code="wait_timed_out")
        self.job = job
