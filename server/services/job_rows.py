"""Job rows as clients see them, even rows that cannot be read or sent as JSON.

An earlier version could store text that is not valid UTF-8 (a lone surrogate such as
``"\\ud800"`` in ``params``): it reads back as a Python string but cannot be encoded. Such a
row must not break a page of other jobs, so its unsendable values are replaced by a marker.
For the same reason the JSON columns are read as text and decoded here, one row at a time.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

from pydantic_core import PydanticSerializationError
from sqlalchemy import Select, Text, cast, select

from taskpost.protocol import JobPublic
from taskpost.server.db.models import Job
from taskpost.server.services.convert import job_public

logger = logging.getLogger(__name__)

UNREADABLE = "<unreadable: this value was stored as text that is not valid UTF-8>"
"""What stands in for a stored value that cannot be encoded."""
_WHOLE_VALUES = ("params", "meta", "result")
_JOBS = Job.__table__  # type: ignore[attr-defined]
# What a JSON column that does not decode reads as.
_UNDECODABLE: dict[str, Any] = {
    "params": {"unreadable": UNREADABLE},
    "meta": {"unreadable": UNREADABLE},
    "result": UNREADABLE,
    "error": {"message": UNREADABLE, "kind": "corrupt_row"},
    "retry": {},
    "inputs": [],
    "outputs": [],
}


def job_select() -> Select[Any]:
    """``SELECT`` of every column of ``jobs``, its JSON columns as their stored text."""
    # A CAST in the SQL, not only in Python: PostgreSQL's driver would decode a json column.
    return select(
        *(cast(col, Text).label(col.name) if col.name in _UNDECODABLE else col for col in _JOBS.columns)
    )


def decoded(row: Any) -> Any:
    """A row of ``job_select()`` with its JSON decoded; a column that does not decode is a marker."""
    values = dict(row._mapping)
    for name, marker in _UNDECODABLE.items():
        raw = values[name]
        if raw is None:
            continue
        try:
            values[name] = json.loads(raw)
        except ValueError:
            logger.error(
                "job %s has a %s that is not JSON",
                values["id"],
                name,
                extra={"job_id": values["id"], "action": "corrupt_row"},
            )
            values[name] = marker
    return SimpleNamespace(**values)


def public_job(row: Any) -> JobPublic:
    """The row as a ``JobPublic`` that is sure to serialise."""
    job = job_public(row).model_copy(update={"cached_from": row.cached_from, "webhook_url": row.webhook_url})
    try:
        job.model_dump_json()
    except PydanticSerializationError:
        logger.error(
            "job %s holds text that cannot be encoded; shown with a marker in its place",
            row.id,
            extra={"job_id": row.id, "action": "corrupt_row"},
        )
        return _marked(job)
    return job


def public_jobs(rows: Sequence[Any]) -> list[JobPublic]:
    """A page of rows; a row that cannot be read at all is left out (and logged), not the page."""
    jobs: list[JobPublic] = []
    for row in rows:
        try:
            jobs.append(public_job(row))
        except Exception:
            logger.exception(
                "job %s cannot be read; left out of the list",
                row.id,
                extra={"job_id": row.id, "action": "corrupt_row"},
            )
    return jobs


def is_encodable(value: Any) -> bool:
    """Whether every string inside ``value`` can be encoded as UTF-8."""
    if isinstance(value, str):
        try:
            value.encode()
        except UnicodeEncodeError:
            return False
        return True
    if isinstance(value, dict):
        return all(is_encodable(k) and is_encodable(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return all(is_encodable(item) for item in value)
    return True


def _scrubbed(value: Any) -> Any:
    if isinstance(value, str):
        return value if is_encodable(value) else value.encode("utf-8", "replace").decode()
    if isinstance(value, dict):
        return {_scrubbed(k): _scrubbed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrubbed(item) for item in value]
    return value


def _marked(job: JobPublic) -> JobPublic:
    data = job.model_dump()
    for name in _WHOLE_VALUES:
        if not is_encodable(data[name]):
            data[name] = UNREADABLE if name == "result" else {"unreadable": UNREADABLE}
    return JobPublic.model_validate(_scrubbed(data))
