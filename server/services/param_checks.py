"""Checking a submit's ``params`` against the JSON Schema its type's agents declared.

The schema is the newest one an agent declared for the type (server.services.job_types); a type
without one is not checked. Each schema is compiled once per process. A refusal is a 422
``invalid_params`` naming each field (``params.beam_size: must be between 1 and 32``), with every
problem in ``details.errors``, the shape of the API's own validation errors.
"""

from __future__ import annotations

import difflib
import json
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from jsonschema import Draft202012Validator, ValidationError, validators
from jsonschema.exceptions import SchemaError
from jsonschema.protocols import Validator

from taskpost.protocol import HandlerSchema, JobCreate
from taskpost.server.coordinator import Coordinator, ParamSchema
from taskpost.server.errors import InvalidParams
from taskpost.server.services import job_types

logger = logging.getLogger(__name__)

REREAD_ON_FAILURE_S = 1.0
"""A refused submit re-reads a schema older than this: an agent may just have declared a newer one
through another replica (at most one read per type and second, however many are refused)."""
MAX_REPORTED = 20

_TYPE_NAMES = {
    "integer": "an integer",
    "number": "a number",
    "string": "a string",
    "boolean": "true or false",
    "object": "an object",
    "array": "a list",
    "null": "null",
}


def compile_schema(schema: dict[str, Any]) -> Validator:
    """The validator of ``schema``; ``SchemaError`` when it is no valid JSON Schema."""
    cls = validators.validator_for(schema, default=Draft202012Validator)
    cls.check_schema(schema)
    return cls(schema)


def check_declared(task_types: Iterable[str], schemas: Mapping[str, HandlerSchema]) -> None:
    """Refuse a registration whose schemas name a type it does not run, or are no JSON Schema."""
    served = set(task_types)
    for job_type, declared in sorted(schemas.items()):
        field = f"param_schemas.{job_type}"
        if job_type not in served:
            raise InvalidParams(f"{job_type!r} has a schema but is not in task_types", field=field)
        try:
            compile_schema(declared.params_schema)
        except SchemaError as exc:
            raise InvalidParams(
                f"not a valid JSON Schema: {exc.message}", field=f"{field}.params_schema"
            ) from None


def _validator(current: ParamSchema, job_type: str) -> Validator | None:
    if current.validator is None and current.params_schema is not None:
        try:
            current.validator = compile_schema(current.params_schema)
        except SchemaError as exc:  # stored by an older coordinator that did not check it
            logger.error(
                "job type %r: its parameter schema is invalid, submits go unchecked: %s", job_type, exc
            )
            current.params_schema = None
    return current.validator if current.params_schema is not None else None


async def check(coord: Coordinator, specs: Sequence[JobCreate]) -> None:
    """Refuse the submit (InvalidParams) when a spec's params do not fit its type's schema."""
    for index, spec in enumerate(specs):
        current = await job_types.current_schema(coord, spec.type)
        validator = _validator(current, spec.type)
        if validator is None or validator.is_valid(spec.params):
            continue
        if coord.clock() - current.read_at >= REREAD_ON_FAILURE_S:
            current = await job_types.current_schema(coord, spec.type, max_age_s=REREAD_ON_FAILURE_S)
            validator = _validator(current, spec.type)
            if validator is None or validator.is_valid(spec.params):
                continue
        prefix = f"jobs.{index}.params" if len(specs) > 1 else "params"
        problems = problems_of(validator, spec.params, prefix)
        summary = "; ".join(f"{p['field']}: {p['message']}" for p in problems[:5])
        raise InvalidParams(
            f"{summary} (job type {spec.type!r}, handler version {current.version})",
            field=problems[0]["field"],
            errors=problems,
        )


def problems_of(validator: Validator, params: dict[str, Any], prefix: str = "params") -> list[dict[str, str]]:
    """Every problem of ``params`` as ``{"field", "message"}``, sorted by field."""
    problems: list[dict[str, str]] = []
    for error in validator.iter_errors(params):
        described = _describe(error, prefix)
        problems.extend(
            described or [{"field": _field(prefix, error.absolute_path), "message": error.message}]
        )
    problems.sort(key=lambda problem: problem["field"])
    return problems[:MAX_REPORTED]


def _field(prefix: str, path: Iterable[Any]) -> str:
    return ".".join([prefix, *(str(part) for part in path)])


def _shown(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 60 else text[:57] + "..."


def _number(value: Any) -> str:
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def _describe(error: ValidationError, prefix: str) -> list[dict[str, str]]:
    field = _field(prefix, error.absolute_path)
    keyword = str(error.validator)
    value: Any = error.validator_value
    schema = error.schema if isinstance(error.schema, dict) else {}
    if keyword == "additionalProperties" and isinstance(error.instance, dict):
        return _unknown_fields(error.instance, schema, field, top=not error.absolute_path)
    if keyword == "required" and isinstance(error.instance, dict):
        missing = [name for name in value if name not in error.instance]
        return [{"field": f"{field}.{name}", "message": "is required"} for name in missing]
    if keyword in ("anyOf", "oneOf") and error.context:
        return _describe_alternatives(error, prefix)
    return [{"field": field, "message": _message(keyword, value, error, schema)}]


def _unknown_fields(
    instance: dict[str, Any], schema: dict[str, Any], field: str, top: bool
) -> list[dict[str, str]]:
    known = sorted(schema.get("properties", {}))
    patterns = list(schema.get("patternProperties", {}))
    extras = [
        name for name in instance if name not in known and not any(re.search(p, name) for p in patterns)
    ]
    what = "unknown parameter" if top else "unknown field"
    problems = []
    for name in sorted(extras):
        message = f"{what}; known: {', '.join(known)}" if known else f"{what}: none are taken"
        if close := difflib.get_close_matches(name, known, n=1):
            message += f" (did you mean {close[0]}?)"
        problems.append({"field": f"{field}.{name}", "message": message})
    return problems


def _describe_alternatives(error: ValidationError, prefix: str) -> list[dict[str, str]]:
    """``anyOf``/``oneOf`` (pydantic's ``X | None``): the problems of the branch whose type fits
    the value, or the types it may have."""
    value: Any = error.validator_value
    branches = value if isinstance(value, list) else []
    checker = Draft202012Validator({})
    fitting: set[int] = set()
    for number, branch in enumerate(branches):
        wanted = branch.get("type") if isinstance(branch, dict) else None
        types = [wanted] if isinstance(wanted, str) else list(wanted or [])
        if not types or any(checker.is_type(error.instance, name) for name in types):
            fitting.add(number)
    within = [
        sub
        for sub in error.context or []
        if sub.relative_schema_path and sub.relative_schema_path[0] in fitting
    ]
    if within:
        problems: list[dict[str, str]] = []
        for sub in within:
            problems.extend(_describe(sub, prefix))
        return problems
    names = [
        branch["type"]
        for branch in branches
        if isinstance(branch, dict) and isinstance(branch.get("type"), str)
    ]
    expected = [_TYPE_NAMES.get(name, name) for name in names if name != "null"] or ["null"]
    field = _field(prefix, error.absolute_path)
    return [{"field": field, "message": f"must be {' or '.join(expected)}, got {_shown(error.instance)}"}]


def _message(keyword: str, value: Any, error: ValidationError, schema: dict[str, Any]) -> str:
    got = _shown(error.instance)
    if keyword == "type":
        names = [value] if isinstance(value, str) else list(value)
        return f"must be {' or '.join(_TYPE_NAMES.get(n, n) for n in names)}, got {got}"
    if keyword in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        return f"{_range(schema)}, got {got}"
    if keyword == "enum":
        return f"must be one of: {', '.join(_shown(v) for v in value)}; got {got}"
    if keyword == "const":
        return f"must be {_shown(value)}, got {got}"
    if keyword == "minLength":
        return "must not be empty" if value == 1 else f"must be at least {value} characters"
    if keyword == "maxLength":
        return f"must be at most {value} characters"
    if keyword == "pattern":
        return f"must match the pattern {value}, got {got}"
    if keyword == "minItems":
        return f"must hold at least {value} items"
    if keyword == "maxItems":
        return f"must hold at most {value} items"
    return error.message


def _range(schema: dict[str, Any]) -> str:
    low, high = schema.get("minimum"), schema.get("maximum")
    above, below = schema.get("exclusiveMinimum"), schema.get("exclusiveMaximum")
    if low is not None and high is not None:
        return f"must be between {_number(low)} and {_number(high)}"
    parts = []
    if low is not None:
        parts.append(f"at least {_number(low)}")
    if above is not None:
        parts.append(f"greater than {_number(above)}")
    if high is not None:
        parts.append(f"at most {_number(high)}")
    if below is not None:
        parts.append(f"less than {_number(below)}")
    return "must be " + " and ".join(parts)
