"""``from_job`` params: another job's output, made an input of the new job when it is created.

A top-level param whose value is ``{"from_job": ID, "output": NAME}`` names an output of a
completed job of the same namespace. The coordinator resolves it as the job is inserted (a
submit, or a chain step whose parent completed): the output becomes an input named NAME, which
takes its own reference on the blob like any input, and the param is rewritten to
``{"input": NAME}``. The agent reads only its own job's inputs, never another job.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from taskpost.protocol import JobState
from taskpost.server.coordinator import Coordinator
from taskpost.server.errors import InvalidParams
from taskpost.server.services.jobs import JOBS

FROM_JOB = "from_job"
_SHAPE = '{"from_job": JOB_ID, "output": NAME}'
_ENTRY_KEYS = ("name", "blob_key", "size", "sha256")


@dataclass(frozen=True)
class OutputRef:
    """A param that names another job's output."""

    param: str
    job_id: str
    output: str


def refs_in(params: dict[str, Any], prefix: str = "params") -> list[OutputRef]:
    """The ``from_job`` references among ``params``; InvalidParams for a malformed one."""
    refs: list[OutputRef] = []
    for name, value in params.items():
        if not isinstance(value, dict) or FROM_JOB not in value:
            continue
        job_id, output = value.get(FROM_JOB), value.get("output")
        if set(value) != {FROM_JOB, "output"} or not isinstance(job_id, str) or not isinstance(output, str):
            raise _malformed(f"{prefix}.{name}")
        if not job_id or not output:
            raise _malformed(f"{prefix}.{name}")
        refs.append(OutputRef(name, job_id, output))
    return refs


def _malformed(field: str) -> InvalidParams:
    return InvalidParams(f"{field} must be {_SHAPE}, with nothing else", field=field)


async def resolve(
    conn: AsyncConnection,
    coord: Coordinator,
    namespace: str,
    params: dict[str, Any],
    taken: Collection[str] = (),
    prefix: str = "params",
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """``params`` with each reference rewritten to ``{"input": NAME}``, and the input entries
    (name, blob_key, size, sha256) they add; the caller adds the blobs' references.

    ``taken``: the names of the job's other inputs. InvalidParams (422, naming the param) for a
    job of another namespace or none, one not completed, a missing output, or a name taken.
    """
    refs = refs_in(params, prefix)
    if not refs:
        return params, []
    query = select(JOBS.c.id, JOBS.c.state, JOBS.c.outputs).where(
        JOBS.c.id.in_({ref.job_id for ref in refs}), JOBS.c.namespace == namespace
    )
    if coord.db.dialect.locks_rows:
        query = query.with_for_update(read=True)  # retention does not delete it before our references
    found = {row.id: row for row in await conn.execute(query)}
    rewritten = dict(params)
    entries: list[dict[str, Any]] = []
    names = set(taken)
    for ref in refs:
        field = f"{prefix}.{ref.param}"
        entry = _output_of(found.get(ref.job_id), ref, field)
        if ref.output in names:
            raise InvalidParams(
                f"{field}: the job already has an input named {ref.output!r}; rename that input",
                field=field,
            )
        names.add(ref.output)
        entries.append({key: entry[key] for key in _ENTRY_KEYS})
        rewritten[ref.param] = {"input": ref.output}
    return rewritten, entries


def _output_of(row: Any, ref: OutputRef, field: str) -> dict[str, Any]:
    if row is None:
        raise InvalidParams(
            f"{field}: no job has id {ref.job_id!r}; name a job of this namespace", field=field
        )
    if row.state != JobState.COMPLETED.value:
        raise InvalidParams(
            f"{field}: job {ref.job_id} is {row.state}; only a completed job's outputs can be read"
            " (wait until it completes, or submit it with this job in its then)",
            field=field,
        )
    outputs = row.outputs or []
    for entry in outputs:
        if entry["name"] == ref.output:
            return dict(entry)
    names = ", ".join(sorted(entry["name"] for entry in outputs)) or "none"
    raise InvalidParams(
        f"{field}: job {ref.job_id} has no output named {ref.output!r} (its outputs: {names})",
        field=field,
    )
