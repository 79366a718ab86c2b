"""Domain errors of the coordinator.

Each carries an HTTP status and a stable code; ``server.api.errors`` maps them all to the one
JSON error shape. The docstring of each class is its default message.

TaskpostError
├── BadRequest (400/422)
│   ├── UnknownJobType (422)
│   └── InvalidParams (422)
├── NotAuthenticated (401)
│   └── KeyExpired (401)
├── Forbidden (403)
│   └── TaskTypeForbidden (403)
├── NotFound (404): JobNotFound, WorkerNotFound, FileNotFound, KeyNotFound
├── Conflict (409): StaleLease, InvalidState, UploadTooSlow, OwnKey
├── PayloadTooLarge (413)
├── TooManyAuthFailures (429)
└── DatabaseUnavailable (503, with Retry-After)

A job of another namespace is a JobNotFound (404), never a Forbidden: a client key cannot tell
whether it exists.
"""

from __future__ import annotations

from typing import Any


class TaskpostError(Exception):
    """Something went wrong in the coordinator."""

    status_code = 500
    code = "internal_error"

    def __init__(self, message: str | None = None, **details: Any) -> None:
        self.message = message or (self.__doc__ or self.code).strip()
        self.details = details or None
        super().__init__(self.message)


class BadRequest(TaskpostError):
    """The request is malformed."""

    status_code = 400
    code = "bad_request"


class UnknownJobType(BadRequest):
    """No agent has registered this job type."""

    status_code = 422
    code = "unknown_job_type"


class InvalidParams(BadRequest):
    """The request has invalid parameters."""

    status_code = 422
    code = "invalid_params"


class NotAuthenticated(TaskpostError):
    """Missing or unknown API key: send it as 'Authorization: Bearer KEY'."""

    status_code = 401
    code = "not_authenticated"


class KeyExpired(NotAuthenticated):
    """This API key has expired: create a new one ('taskpost keys create') or rotate it ('taskpost
    keys rotate')."""

    code = "key_expired"


class Forbidden(TaskpostError):
    """This API key's role may not do that."""

    status_code = 403
    code = "forbidden"


class TaskTypeForbidden(Forbidden):
    """This API key is limited to other job types."""

    code = "task_type_forbidden"


class NotFound(TaskpostError):
    """Not found."""

    status_code = 404
    code = "not_found"


class JobNotFound(NotFound):
    """No job has this id."""

    code = "job_not_found"


class WorkerNotFound(NotFound):
    """No registered agent has this id: register again."""

    code = "worker_not_found"


class FileNotFound(NotFound):
    """The job has no file of this name."""

    code = "file_not_found"


class UploadNotFound(NotFound):
    """No upload has this id: upload the file first through POST /api/v1/uploads."""

    code = "upload_not_found"


class KeyNotFound(NotFound):
    """No API key has this id."""

    code = "key_not_found"


class Conflict(TaskpostError):
    """The request conflicts with the current state."""

    status_code = 409
    code = "conflict"


class StaleLease(Conflict):
    """This lease token is not (or no longer) the live lease of the task."""

    code = "stale_lease"


class InvalidState(Conflict):
    """The job is not in a state that allows this."""

    code = "invalid_state"


class UploadTooSlow(Conflict):
    """The file took longer to arrive than TASKPOST_UPLOAD_GRACE_S allows: send it again."""

    code = "upload_too_slow"


class OwnKey(Conflict):
    """A key cannot revoke itself: revoke it with another admin key."""

    code = "own_key"


class PayloadTooLarge(TaskpostError):
    """The file is larger than the coordinator accepts."""

    status_code = 413
    code = "payload_too_large"


class TooManyAuthFailures(TaskpostError):
    """Too many failed authentications from this address: wait for Retry-After seconds."""

    status_code = 429
    code = "too_many_auth_failures"


class DatabaseUnavailable(TaskpostError):
    """The database cannot be reached right now: try again after Retry-After seconds."""

    status_code = 503
    code = "database_unavailable"
    retry_after_s = 2
