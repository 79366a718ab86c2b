"""Parameters are a contract: agents declare a JSON Schema per type, submits are checked against it."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from taskpost.agent.handlers.params import NoopParams, OcrParams, TranscriptionParams, UrlAudioParams
from taskpost.protocol import API_PREFIX, JobCreate
from taskpost.server.services import param_checks
from taskpost.server.services.job_types import SCHEMAS
from tests.server.conftest import Api, running_api

pytestmark = pytest.mark.anyio


def declared(model: Any, version: str = "1.0") -> dict[str, Any]:
    return {"version": version, "params_schema": model.model_json_schema()}


async def register_media(api: Api, **extra: Any) -> str:
    schemas = {
        "transcription": declared(TranscriptionParams),
        "url_audio": declared(UrlAudioParams),
        "ocr": declared(OcrParams),
        "noop": declared(NoopParams),
    }
    return await api.register(task_types=sorted(schemas), param_schemas=schemas, **extra)


def problems(body: dict[str, Any]) -> dict[str, str]:
    assert body["error"]["code"] == "invalid_params", body
    return {problem["field"]: problem["message"] for problem in body["error"]["details"]["errors"]}


async def types_by_name(api: Api, role: str = "client") -> dict[str, dict[str, Any]]:
    response = await api.http.get(f"{API_PREFIX}/types", headers=api.auth(role))
    assert response.status_code == 200, response.text
    return {entry["name"]: entry for entry in response.json()["types"]}


async def test_registration_stores_the_schema_per_type_and_version(api: Api) -> None:
    await register_media(api)
    await api.register(
        task_types=["transcription"], param_schemas={"transcription": declared(OcrParams, "2.0")}
    )
    async with api.coord.db.read() as conn:
        rows = (await conn.execute(select(SCHEMAS).where(SCHEMAS.c.type == "transcription"))).all()
    assert {row.version for row in rows} == {"1.0", "2.0"}
    # The same version declared again updates its row, and is the current one again.
    api.clock.advance(5)
    await register_media(api)
    async with api.coord.db.read() as conn:
        rows = (await conn.execute(select(SCHEMAS).where(SCHEMAS.c.type == "transcription"))).all()
    assert len(rows) == 2
    assert (await types_by_name(api))["transcription"]["version"] == "1.0"


async def test_unknown_wrong_type_and_out_of_range_params_are_refused_at_submit(api: Api) -> None:
    await register_media(api)
    typo = problems(await api.submit(expect=422, type="transcription", params={"beam_sise": 3}))
    assert list(typo) == ["params.beam_sise"]
    assert typo["params.beam_sise"].startswith("unknown parameter; known: allow_download, beam_size, ")
    assert "did you mean beam_size?" in typo["params.beam_sise"]
    body = await api.submit(expect=422, type="transcription", params={"beam_size": "3", "vad_filter": 1})
    assert problems(body) == {
        "params.beam_size": 'must be an integer, got "3"',
        "params.vad_filter": "must be true or false, got 1",
    }
    assert body["error"]["details"]["field"] == "params.beam_size"
    assert body["error"]["message"].startswith('params.beam_size: must be an integer, got "3"; ')
    out_of_range = await api.submit(expect=422, type="transcription", params={"beam_size": 40})
    assert problems(out_of_range) == {"params.beam_size": "must be between 1 and 32, got 40"}
    assert problems(await api.submit(expect=422, type="ocr", params={"engine": "tesseract", "dpi": 20})) == {
        "params.dpi": "must be between 50 and 600, got 20",
        "params.engine": 'must be one of: "rapidocr", "easyocr"; got "tesseract"',
    }
    assert problems(await api.submit(expect=422, type="url_audio", params={})) == {
        "params.url": "is required"
    }
    assert problems(await api.submit(expect=422, type="transcription", params={"language": 3})) == {
        "params.language": "must be a string, got 3"
    }
    # Fitting params, local_path and url included, are accepted.
    for params in (
        {"beam_size": 3, "language": "en"},
        {"local_path": "/data/a.wav"},
        {"url": "https://x/a.wav"},
    ):
        job = await api.submit(type="transcription", params=params, labels=["files-root:/data"])
        assert job["params"] == params


async def test_noop_takes_further_fields_but_checks_its_own(api: Api) -> None:
    await register_media(api)
    params = {"anything": [1, {"x": "y"}], "sleep_s": 0.5, "outputs": {"a.txt": "x"}}
    assert (await api.submit(type="noop", params=params))["params"] == params
    assert problems(
        await api.submit(expect=422, type="noop", params={"sleep_s": -1, "outputs": {"a": 1}})
    ) == {
        "params.outputs.a": "must be a string, got 1",
        "params.sleep_s": "must be at least 0, got -1",
    }


async def test_a_type_without_a_schema_is_not_checked(api: Api) -> None:
    await api.register(task_types=["resize"])
    params = {"width": "any", "whatever": True}
    assert (await api.submit(type="resize", params=params))["params"] == params
    # Agents that declare no schema leave the current one of the type as it is.
    await register_media(api)
    await api.register(task_types=["transcription"])
    await api.submit(expect=422, type="transcription", params={"beam_sise": 3})


async def test_a_batch_names_the_job_whose_params_are_refused(api: Api) -> None:
    await register_media(api)
    jobs = [{"type": "noop", "params": {"x": 1}}, {"type": "transcription", "params": {"beam_sise": 3}}]
    response = await api.http.post(
        f"{API_PREFIX}/jobs/batch", json={"jobs": jobs}, headers=api.auth("client")
    )
    assert response.status_code == 422, response.text
    assert list(problems(response.json())) == ["jobs.1.params.beam_sise"]
    listed = await api.http.get(f"{API_PREFIX}/jobs", headers=api.auth("client"))
    assert listed.json()["jobs"] == []  # nothing of the batch was inserted


@pytest.mark.parametrize(
    ("schemas", "field"),
    [
        ({"ocr": declared(OcrParams)}, "param_schemas.ocr"),
        (
            {"noop": {"version": "1", "params_schema": {"type": "nonsense"}}},
            "param_schemas.noop.params_schema",
        ),
    ],
)
async def test_a_registration_with_a_bad_schema_is_refused(
    api: Api, schemas: dict[str, Any], field: str
) -> None:
    response = await api.http.post(
        f"{API_PREFIX}/workers/register",
        json={"task_types": ["noop"], "param_schemas": schemas},
        headers=api.auth("worker"),
    )
    assert response.status_code == 422, response.text
    assert response.json()["error"]["details"]["field"] == field
    assert (await api.submit(type="noop", params={"sleep_s": "not checked"}))["type"] == "noop"


async def test_types_lists_schemas_and_the_agents_serving_each(api: Api) -> None:
    worker_id = await register_media(api)
    await api.register(task_types=["resize"])
    types = await types_by_name(api, "worker")
    transcription = types["transcription"]
    assert transcription["version"] == "1.0"
    assert transcription["params_schema"] == TranscriptionParams.model_json_schema()
    assert (transcription["agents"], transcription["online"]) == (1, True)
    assert transcription["last_seen_at"] is not None
    assert (types["resize"]["agents"], types["resize"]["params_schema"]) == (1, None)
    assert (types["document"]["agents"], types["document"]["online"], types["document"]["last_seen_at"]) == (
        0,
        False,
        None,
    )
    drain = await api.http.post(f"{API_PREFIX}/workers/{worker_id}/drain", headers=api.auth("admin"))
    assert drain.status_code == 200, drain.text
    assert (await types_by_name(api))["transcription"]["online"] is False
    api.clock.advance(api.coord.settings.worker_gone_s + 1)
    assert (await types_by_name(api, "admin"))["transcription"]["agents"] == 0
    unauthenticated = await api.http.get(f"{API_PREFIX}/types")
    assert unauthenticated.status_code == 401


async def test_a_schema_declared_through_another_replica_is_used(api: Api) -> None:
    """Each replica caches the current schema; a refused submit reads it again."""
    await register_media(api)
    await api.submit(expect=422, type="transcription", params={"speaker_count": 2})
    async with running_api(api.coord.settings, api.clock) as other:
        newer = TranscriptionParams.model_json_schema()
        newer["properties"]["speaker_count"] = {"type": "integer", "minimum": 1}
        await other.register(
            task_types=["transcription"],
            param_schemas={"transcription": {"version": "2.0", "params_schema": newer}},
        )
    api.clock.advance(2)
    assert (await api.submit(type="transcription", params={"speaker_count": 2}))["type"] == "transcription"
    assert api.coord.param_schemas["transcription"].version == "2.0"


async def test_a_batch_of_500_noop_jobs_is_checked_by_one_compiled_validator(api: Api) -> None:
    # How fast a batch is checked is measured in bench/, not here: this holds the reason it is
    # fast, a validator compiled once per schema and not once per job.
    await register_media(api)
    jobs = [{"type": "noop", "params": {"i": i, "sleep_s": 0.1, "tag": "bench"}} for i in range(500)]
    specs = [JobCreate.model_validate(job) for job in jobs]
    await param_checks.check(api.coord, specs)
    validator = api.coord.param_schemas["noop"].validator
    assert validator is not None
    await param_checks.check(api.coord, specs)
    assert api.coord.param_schemas["noop"].validator is validator
