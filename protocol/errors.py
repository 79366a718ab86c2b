"""The one JSON error shape every 4xx/5xx answer of the coordinator uses."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class ErrorDetail(BaseModel):
    code: str
    """Stable, machine-readable code such as ``job_not_found`` or ``stale_lease``."""
    message: str
    """What went wrong and what to do about it, for a person."""
    details: dict[str, Any] | None = None


class ErrorBody(BaseModel):
    error: ErrorDetail
