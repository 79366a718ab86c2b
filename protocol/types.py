"""Models of the job-type registry: the parameters each handler declares, and ``GET /api/v1/types``.

An agent sends, when it registers, the JSON Schema of the parameters of each type it serves
(built from the handler's pydantic model). The coordinator keeps the latest schema per type and
handler version and checks every submit's ``params`` against it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from taskpost.protocol.request import RequestModel


class HandlerSchema(RequestModel):
    """What an agent declares about one job type it serves."""

    version: str = Field(min_length=1, max_length=100)
    """The handler's version: a cached result is only reused from the same version."""
    params_schema: dict[str, Any]
    """JSON Schema (draft 2020-12) of the job's ``params``; ``additionalProperties: true`` (or
    absent) means the handler takes further fields, as ``noop`` does."""


class JobTypeInfo(BaseModel):
    """One known job type, as ``GET /api/v1/types`` lists it."""

    name: str
    version: str | None = None
    """The handler version whose schema submits are checked against (the latest registered)."""
    params_schema: dict[str, Any] | None = None
    """None when no agent serving the type declared a schema (older agents)."""
    agents: int = 0
    """Live agents that serve the type."""
    online: bool = False
    """Whether any of them is online now."""
    last_seen_at: datetime | None = None
    """When an agent serving the type last registered or checked in."""


class JobTypeList(BaseModel):
    types: list[JobTypeInfo]
