"""The Python client library of a Taskpost coordinator.

``Client`` (blocking), ``AsyncClient`` (asyncio), and the exceptions both raise.
"""

from taskpost.client.async_client import AsyncClient
from taskpost.client.errors import (
    ChecksumMismatch,
    Conflict,
    FileNotFound,
    Forbidden,
    InvalidParams,
    InvalidState,
    JobFailed,
    JobNotFound,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    ServerError,
    ServerUnavailable,
    TaskpostError,
    Unauthorized,
    UnknownJobType,
    UploadNotFound,
    UploadTooSlow,
    WaitTimedOut,
)
from taskpost.client.requests import chain_step, job_spec
from taskpost.client.sync import Client
from taskpost.client.webhooks import InvalidSignature, verify_webhook

__all__ = [
    "AsyncClient",
    "ChecksumMismatch",
    "Client",
    "Conflict",
    "FileNotFound",
    "Forbidden",
    "InvalidParams",
    "InvalidSignature",
    "InvalidState",
    "JobFailed",
    "JobNotFound",
    "NotFound",
    "PayloadTooLarge",
    "RateLimited",
    "ServerError",
    "ServerUnavailable",
    "TaskpostError",
    "Unauthorized",
    "UnknownJobType",
    "UploadNotFound",
    "UploadTooSlow",
    "WaitTimedOut",
    "chain_step",
    "job_spec",
    "verify_webhook",
]
