"""Request models are closed, strict, bounded and JSON-safe; response models stay tolerant."""

from __future__ import annotations

import types
import typing
from typing import Any

import annotated_types
import pytest
from pydantic import BaseModel, ValidationError

from taskpost import protocol
from taskpost.protocol import (
    BulkRequeue,
    ChainStep,
    ClaimRequest,
    CompleteRequest,
    HandlerSchema,
    HeartbeatRequest,
    InputRef,
    JobBatchCreate,
    JobCreate,
    JobPublic,
    KeyCreate,
    KeyRotate,
    QueueEmpty,
    ReleaseRequest,
    RequestModel,
    RetryPolicy,
    TaskCompletion,
    TaskProgress,
    WorkerRegister,
    is_safe_file_name,
    utf8_safe,
)

REQUEST_MODELS: list[type[RequestModel]] = [
    JobCreate,
    JobBatchCreate,
    RetryPolicy,
    InputRef,
    KeyCreate,
    WorkerRegister,
    ClaimRequest,
    TaskCompletion,
    CompleteRequest,
    TaskProgress,
    HeartbeatRequest,
    ReleaseRequest,
    HandlerSchema,
    KeyRotate,
    BulkRequeue,
    QueueEmpty,
    ChainStep,
]


def _locs(exc: pytest.ExceptionInfo[ValidationError]) -> list[tuple[Any, ...]]:
    return [error["loc"] for error in exc.value.errors()]


def test_every_body_model_of_the_protocol_is_a_request_model() -> None:
    exported = {getattr(protocol, name) for name in protocol.__all__}
    models = {m for m in exported if isinstance(m, type) and issubclass(m, BaseModel)}
    requests = {m for m in models if issubclass(m, RequestModel) and m is not RequestModel}
    assert requests == set(REQUEST_MODELS)
    names = {m.__name__ for m in models - requests}
    assert not {n for n in names if n.endswith(("Create", "Request", "Register"))}, names


@pytest.mark.parametrize("model", REQUEST_MODELS)
def test_request_models_refuse_unknown_fields(model: type[RequestModel]) -> None:
    with pytest.raises(ValidationError) as exc:
        model.model_validate({"surely_not_a_field": 1})
    assert ("surely_not_a_field",) in _locs(exc)


def test_response_models_ignore_fields_a_newer_server_adds() -> None:
    job = JobPublic.model_validate(
        {
            "id": "j",
            "type": "noop",
            "state": "queued",
            "priority": "default",
            "params": {},
            "meta": {},
            "created_at": "2025-01-01T00:00:00Z",
            "attempts": 0,
            "max_attempts": 3,
            "added_in_v2": True,
        }
    )
    assert job.id == "j"


@pytest.mark.parametrize(
    ("raw", "loc"),
    [
        ('{"type": "noop", "params": {"a": {"b": "\\ud800"}}}', ("params", "a", "b")),
        ('{"type": "noop", "params": {"\\udfff": 1}}', ("params", "\\udfff")),
        ('{"type": "noop", "meta": {"x": ["ok", "\\ud800"]}}', ("meta", "x", 1)),
        ('{"type": "noop", "params": {"a": NaN}}', ("params", "a")),
        ('{"type": "noop", "params": {"a": -Infinity}}', ("params", "a")),
        ('{"type": "noop", "params": {"a": 1e400}}', ("params", "a")),
        ('{"type": "noop", "timeout_s": NaN}', ("timeout_s",)),
    ],
)
def test_unsendable_values_are_refused_at_their_path(raw: str, loc: tuple[Any, ...]) -> None:
    with pytest.raises(ValidationError) as exc:
        JobCreate.model_validate_json(raw)
    assert loc in _locs(exc)
    exc.value.json()  # the error itself can always be sent


def test_nested_models_report_the_full_path() -> None:
    batch = {"jobs": [{"type": "noop"}, {"type": "noop", "params": {"k": float("inf")}}]}
    with pytest.raises(ValidationError) as exc:
        JobBatchCreate.model_validate(batch)
    assert _locs(exc) == [("jobs", 1, "params", "k")]


def test_agent_texts_are_checked_too() -> None:
    with pytest.raises(ValidationError) as exc:
        TaskCompletion(job_id="j", lease_token="t", outcome="failed", error_message="bad \udcff name")
    assert _locs(exc) == [("error_message",)]
    with pytest.raises(ValidationError):
        TaskProgress(job_id="j", lease_token="t", message="\ud800")


def test_free_form_json_may_not_nest_without_end() -> None:
    deep: Any = "leaf"
    for _ in range(100):
        deep = [deep]
    with pytest.raises(ValidationError) as exc:
        JobCreate.model_validate({"type": "noop", "params": {"deep": deep}})
    assert exc.value.errors()[0]["type"] == "json_too_deep"
    shallow: Any = "leaf"
    for _ in range(20):
        shallow = {"x": shallow}
    assert JobCreate.model_validate({"type": "noop", "params": shallow}).params == shallow


def test_unreadable_json_still_gets_pydantics_own_error() -> None:
    with pytest.raises(ValidationError) as exc:
        JobCreate.model_validate_json(b'{"type": "noop",')
    assert exc.value.errors()[0]["type"] == "json_invalid"


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"max_attempts": True}, "max_attempts"),
        ({"max_attempts": "3"}, "max_attempts"),
        ({"max_attempts": 3.5}, "max_attempts"),
        ({"timeout_s": False}, "timeout_s"),
        ({"timeout_s": "5"}, "timeout_s"),
        ({"retry": {"jitter": 0}}, "retry"),
    ],
)
def test_bools_and_numbers_are_strict(data: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as exc:
        JobCreate.model_validate({"type": "noop", **data})
    assert _locs(exc)[0][0] == field


def test_a_float_field_takes_an_integer() -> None:
    assert JobCreate.model_validate_json('{"type": "noop", "timeout_s": 5}').timeout_s == 5.0
    assert ClaimRequest.model_validate({"wait_s": 0}).wait_s == 0.0


@pytest.mark.parametrize("name", [".", "..", "", "a/b", "a\\b", "nul\x00", "new\nline", "del\x7f", "c1\x85"])
def test_unsafe_input_names_are_refused(name: str) -> None:
    assert not is_safe_file_name(name)
    with pytest.raises(ValidationError):
        InputRef(name=name, upload_id="u")


@pytest.mark.parametrize("name", ["a.wav", "...", ".hidden", "résumé.pdf", "x" * 255])
def test_ordinary_input_names_are_accepted(name: str) -> None:
    assert is_safe_file_name(name)
    assert InputRef(name=name, upload_id="u").name == name


@pytest.mark.parametrize("task_type", ["noop", "url_audio", "ocr.v2", "a-b", "x" * 64])
def test_task_types_that_are_identifiers(task_type: str) -> None:
    assert WorkerRegister(task_types=[task_type]).task_types == [task_type]


@pytest.mark.parametrize("task_type", ["", "Noop", "1x", "a b", "a/b", "x" * 65, "é"])
def test_task_types_that_are_not(task_type: str) -> None:
    with pytest.raises(ValidationError):
        WorkerRegister(task_types=[task_type])


def _is_bounded(annotation: Any, metadata: list[Any]) -> bool:
    """Whether a str or list type carries a maximum length (directly or in its Annotated form)."""
    if typing.get_origin(annotation) is typing.Annotated:
        annotation, *extra = typing.get_args(annotation)
        metadata = [*metadata, *extra]
        metadata += [m for item in extra for m in getattr(item, "metadata", [])]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return all(_is_bounded(arg, metadata) for arg in typing.get_args(annotation) if arg is not type(None))
    has_max = any(isinstance(m, annotated_types.MaxLen) for m in metadata)
    if (annotation is str or typing.get_origin(annotation) is list) and not has_max:
        return False
    if typing.get_origin(annotation) is list:
        [item] = typing.get_args(annotation)
        return _is_bounded(item, [])
    return True


@pytest.mark.parametrize("model", REQUEST_MODELS)
def test_every_text_and_list_of_a_request_is_bounded(model: type[RequestModel]) -> None:
    for name, field in model.model_fields.items():
        assert _is_bounded(field.annotation, list(field.metadata)), f"{model.__name__}.{name}"


def test_utf8_safe_escapes_only_what_cannot_be_encoded() -> None:
    assert utf8_safe("plain é") == "plain é"
    assert utf8_safe("a\ud800b") == "a\\ud800b"
    utf8_safe("a\ud800b").encode()


def _nested(depth: int) -> dict[str, Any]:
    step: dict[str, Any] = {"type": "noop"}
    for _ in range(depth - 1):
        step = {"type": "noop", "then": [step]}
    return step


def test_a_chain_four_levels_deep_is_accepted_and_five_refused() -> None:
    assert JobCreate.model_validate({"type": "noop", "then": [_nested(4)]}).then[0].type == "noop"
    with pytest.raises(ValidationError, match="nested 5 deep"):
        JobCreate.model_validate({"type": "noop", "then": [_nested(5)]})


def test_a_chain_of_more_than_sixteen_steps_is_refused() -> None:
    sixteen = [{"type": "noop", "then": [{"type": "noop"}]} for _ in range(8)]
    assert len(JobCreate.model_validate({"type": "noop", "then": sixteen}).then) == 8
    seventeen = [*sixteen[:7], {"type": "noop", "then": [{"type": "noop"}, {"type": "noop"}]}]
    with pytest.raises(ValidationError, match="17 steps"):
        JobCreate.model_validate({"type": "noop", "then": seventeen})
