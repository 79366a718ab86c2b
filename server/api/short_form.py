"""The short form of a submit: ``POST /jobs/{type}`` with the job's params as the JSON body.

``curl -d '{"local_path": "samples/sample.pdf"}' .../api/v1/jobs/ocr`` is the submit
``{"type": "ocr", "params": {"local_path": "samples/sample.pdf"}}``; the other fields of a submit
(priority, timeout_s, labels, ...) are optional query parameters. It answers as ``POST /jobs``.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from taskpost.protocol import Priority, WorkerType
from taskpost.server.errors import InvalidParams

BODY_FIELD = "body"

OPENAPI_EXTRA: dict[str, Any] = {
    "requestBody": {
        "required": False,
        "description": "The job's params (an empty body: no params).",
        "content": {"application/json": {"schema": {"type": "object", "additionalProperties": True}}},
    }
}
"""``openapi_extra`` of the route: it reads its body itself (it has no body parameter)."""


class SubmitOptions(BaseModel):
    """The fields of a submit besides ``type`` and ``params``, as query parameters.

    Checked again as the submit's own fields (``JobCreate``), which name the field in a 422."""

    model_config = ConfigDict(extra="forbid")

    priority: Priority | None = None
    timeout_s: float | None = None
    total_timeout_s: float | None = None
    max_attempts: int | None = None
    idempotency_key: str | None = None
    worker_type: WorkerType | None = None
    labels: list[str] = Field(default_factory=list, description="Repeat for several labels.")
    run_at: datetime | None = None
    delay_s: float | None = None
    cache: bool | None = None
    webhook_url: str | None = None


def _params(body: bytes) -> dict[str, Any]:
    if not body.strip():
        return {}
    try:
        params = json.loads(body)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError too
        raise InvalidParams(
            f"the body must be the job's params as a JSON object: it is not JSON ({exc})", field=BODY_FIELD
        ) from None
    if not isinstance(params, dict):
        raise InvalidParams(
            f"the body must be the job's params as a JSON object, not {type(params).__name__}",
            field=BODY_FIELD,
        )
    return params


def job_data(job_type: str, body: bytes, options: SubmitOptions) -> dict[str, Any]:
    """The submit this request stands for, to validate as a ``JobCreate``."""
    fields = options.model_dump(mode="json", exclude_none=True)
    if not fields.get("labels"):
        fields.pop("labels", None)
    return {"type": job_type, "params": _params(body), **fields}
