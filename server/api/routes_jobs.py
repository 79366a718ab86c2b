"""Client routes: uploads and jobs."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Query, Request, status
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.responses import Response

from taskpost.protocol import (
    SHA256_HEADER,
    SHA256_PATTERN,
    JobBatchCreate,
    JobBatchSubmitted,
    JobCreate,
    JobEventPublic,
    JobPage,
    JobPublic,
    JobState,
    JobSubmitted,
    UploadPublic,
)
from taskpost.server.api import files, multipart, openapi, short_form
from taskpost.server.api.deps import CoordinatorDep, JobScopeDep, TargetNamespaceDep
from taskpost.server.coordinator import Coordinator
from taskpost.server.errors import InvalidParams
from taskpost.server.services import job_types, jobs, submissions, uploads

router = APIRouter(tags=["jobs"])


@router.post("/uploads", status_code=status.HTTP_201_CREATED, openapi_extra=openapi.RAW_BODY)
async def upload(
    request: Request,
    coord: CoordinatorDep,
    namespace: TargetNamespaceDep,
    name: Annotated[str, Query(json_schema_extra=files.FILE_NAME_SCHEMA)] = "input",
    declared_sha256: Annotated[str | None, Header(alias=SHA256_HEADER, pattern=SHA256_PATTERN)] = None,
) -> UploadPublic:
    """Store a file (the raw request body) for a job of the same namespace to name among its inputs.

    With ``X-Content-SHA256``, a body whose digest differs is refused (422) and not kept.
    """
    files.check_name(name)
    return await uploads.store_upload(coord, namespace, name, files.body_chunks(request), declared_sha256)


def _parse_job(raw: bytes | dict[str, Any]) -> JobCreate:
    try:
        if isinstance(raw, dict):
            return JobCreate.model_validate(raw)
        return JobCreate.model_validate_json(raw)
    except ValidationError as exc:
        problems = [
            {"field": ".".join(map(str, e["loc"])) or "body", "message": e["msg"]} for e in exc.errors()
        ]
        summary = "; ".join(f"{p['field']}: {p['message']}" for p in problems[:5])
        raise InvalidParams(f"invalid job: {summary}", errors=problems) from exc


async def _submitted(coord: Coordinator, namespace: str, spec: JobCreate) -> Response:
    [(job, created)] = await submissions.submit(coord, namespace, [spec])
    return _answer(coord, job, created)


def _answer(coord: Coordinator, job: JobPublic, created: bool) -> Response:
    warning = job_types.unserved_warning(coord, job.type)
    body = JobSubmitted(job=job, created=created, warnings=[warning] if warning else []).model_dump(
        mode="json"
    )
    return JSONResponse(status_code=201 if created else 200, content=body)


@router.post(
    "/jobs",
    status_code=status.HTTP_201_CREATED,
    responses={200: {"model": JobSubmitted, "description": "existing job (same idempotency key)"}},
    openapi_extra=openapi.job_submit_body(),
)
async def submit(request: Request, coord: CoordinatorDep, namespace: TargetNamespaceDep) -> Response:
    """Submit one job, as JSON or as multipart/form-data: a ``job`` field with that JSON, and
    files (each part with a filename becomes an input of that name)."""
    if request.headers.get("content-type", "").lower().startswith("multipart/"):
        async with uploads.StagedFiles(coord) as staged:
            spec = await multipart.read_job_form(request, staged, coord.settings, _parse_job)
            [(job, created)] = await submissions.submit(coord, namespace, [spec], staged.inputs)
            if created:
                staged.keep()
    else:
        return await _submitted(coord, namespace, _parse_job(await request.body()))
    return _answer(coord, job, created)


@router.post("/jobs/batch", status_code=status.HTTP_201_CREATED)
async def submit_batch(
    batch: JobBatchCreate, coord: CoordinatorDep, namespace: TargetNamespaceDep
) -> JobBatchSubmitted:
    results = await submissions.submit(coord, namespace, batch.jobs)
    warnings = {t: job_types.unserved_warning(coord, t) for t in {job.type for job, _ in results}}
    return JobBatchSubmitted(
        jobs=[
            JobSubmitted(job=job, created=created, warnings=[w] if (w := warnings[job.type]) else [])
            for job, created in results
        ]
    )


# The path names its segment job_id, as GET /jobs/{job_id} does: one path template with two
# methods, not two templates of one shape (which OpenAPI tools and the Allow header disagree on).
@router.post(
    "/jobs/{job_id}",
    status_code=status.HTTP_201_CREATED,
    responses={200: {"model": JobSubmitted, "description": "existing job (same idempotency key)"}},
    openapi_extra=short_form.OPENAPI_EXTRA,
)
async def submit_short(
    job_type: Annotated[
        str,
        Path(alias="job_id", description="For this POST, the job type (``batch`` is the batch submit)."),
    ],
    request: Request,
    coord: CoordinatorDep,
    namespace: TargetNamespaceDep,
    options: Annotated[short_form.SubmitOptions, Query()],
) -> Response:
    """The short form of ``POST /jobs``: the body is the job's params (a JSON object), the type is
    in the path, and the other fields of a submit are query parameters."""
    spec = _parse_job(short_form.job_data(job_type, await request.body(), options))
    return await _submitted(coord, namespace, spec)


@router.get("/jobs")
async def list_jobs(
    coord: CoordinatorDep,
    scope: JobScopeDep,
    state: JobState | None = None,
    type: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(pattern=jobs.CURSOR_PATTERN)] = None,
) -> JobPage:
    """Newest first: a client key's own namespace; an admin's ``?namespace=``, or every namespace."""
    return await jobs.list_jobs(coord, scope, state=state, job_type=type, limit=limit, cursor=cursor)


@router.get("/jobs/{job_id}")
async def get_job(
    job_id: str,
    coord: CoordinatorDep,
    scope: JobScopeDep,
    wait_s: Annotated[
        float,
        Query(
            ge=0,
            le=3600,
            description="Hold the answer until the job changes state or this many seconds pass "
            "(at most the coordinator's long-poll setting).",
        ),
    ] = 0,
    seen_state: Annotated[
        JobState | None,
        Query(
            description="With wait_s: the state the caller last saw; a job in any other state is "
            "answered at once (default: the state it is in when asked)."
        ),
    ] = None,
) -> JobPublic:
    if wait_s > 0:
        return await jobs.get_when_changed(coord, job_id, scope, wait_s, seen_state)
    return await jobs.get(coord, job_id, scope)


@router.get("/jobs/{job_id}/events")
async def job_events(
    job_id: str,
    coord: CoordinatorDep,
    scope: JobScopeDep,
    all: Annotated[
        bool,
        Query(description="Also the stream kinds (state, progress, partial), with their ids and data."),
    ] = False,
) -> list[JobEventPublic]:
    return await jobs.job_events(coord, job_id, scope, all=all)


@router.post("/jobs/{job_id}/cancel")
async def cancel(job_id: str, coord: CoordinatorDep, scope: JobScopeDep) -> JobPublic:
    return await jobs.cancel(coord, job_id, scope)


@router.post("/jobs/{job_id}/requeue")
async def requeue(job_id: str, coord: CoordinatorDep, scope: JobScopeDep) -> JobPublic:
    return await jobs.requeue(coord, job_id, scope)


@router.get("/jobs/{job_id}/outputs/{name}", response_class=Response)
async def download_output(
    job_id: str, name: files.FileNameParam, coord: CoordinatorDep, scope: JobScopeDep
) -> Response:
    return await files.blob_response(coord, await jobs.output_blob(coord, job_id, name, scope))
