"""``RequestModel``: the base of every model a client or an agent sends.

A request model is closed (an unknown field is an error, never silently dropped), strict about
booleans and numbers (declared with ``StrictBool``/``JsonInt``/``StrictFloat``), and JSON-safe
all the way down: every text in it, free-form values and dict keys included, can be encoded as
UTF-8, and every number is finite. Python's JSON parser reads ``"\\ud800"``, ``NaN`` and ``1e400``
without complaint, but such values cannot be stored or sent back, so they are refused here, once,
with the path of each offending value. Response models stay tolerant (a plain ``BaseModel``), so
that a client can read the answers of a newer server.
"""

from __future__ import annotations

import json
import math
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from taskpost.protocol.fields import MAX_JSON_DEPTH

MAX_REPORTED_PROBLEMS = 20

Location = tuple[str | int, ...]


def is_utf8(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def utf8_safe(text: str) -> str:
    """``text`` with anything UTF-8 cannot encode (lone surrogates) written as ``\\udXXX``."""
    return text if is_utf8(text) else text.encode("utf-8", "backslashreplace").decode()


def _problem(loc: Location, kind: str, message: str, shown: str) -> InitErrorDetails:
    return InitErrorDetails(type=PydanticCustomError(kind, message), loc=loc, input=shown)


def unsendable_values(data: Any, max_depth: int = MAX_JSON_DEPTH) -> list[InitErrorDetails]:
    """Every text in ``data`` that is not UTF-8, every number that is not finite, and nesting
    deeper than ``max_depth``, each with its location (at most ``MAX_REPORTED_PROBLEMS``)."""
    problems: list[InitErrorDetails] = []
    pending: list[tuple[Location, Any]] = [((), data)]
    while pending and len(problems) < MAX_REPORTED_PROBLEMS:
        loc, value = pending.pop()
        if isinstance(value, str):
            if not is_utf8(value):
                problems.append(
                    _problem(loc, "text_not_utf8", "text must be valid UTF-8 (no lone surrogates)", "…")
                )
        elif isinstance(value, float):
            if not math.isfinite(value):
                problems.append(_problem(loc, "number_not_finite", "number must be finite", repr(value)))
        elif isinstance(value, dict | list | tuple):
            if len(loc) >= max_depth:
                message = f"nested deeper than {max_depth} levels"
                problems.append(_problem(loc, "json_too_deep", message, "…"))
                continue
            pending.extend(_children(loc, value, problems))
    return problems


def _children(
    loc: Location, value: dict[Any, Any] | list[Any] | tuple[Any, ...], problems: list[InitErrorDetails]
) -> list[tuple[Location, Any]]:
    if not isinstance(value, dict):
        return [((*loc, index), item) for index, item in reversed(list(enumerate(value)))]
    children: list[tuple[Location, Any]] = []
    for key, item in reversed(value.items()):
        if isinstance(key, str) and not is_utf8(key):
            message = "key must be valid UTF-8 (no lone surrogates)"
            problems.append(_problem((*loc, utf8_safe(key)), "text_not_utf8", message, "…"))
            continue
        children.append(((*loc, key), item))
    return children


class RequestModel(BaseModel):
    """A body the coordinator accepts: closed, strict and JSON-safe (see the module docstring)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _refuse_unsendable_values(cls, data: Any) -> Any:
        if isinstance(data, dict):
            problems = unsendable_values(data)
            if problems:
                raise ValidationError.from_exception_data(cls.__name__, problems)
        return data

    @classmethod
    def model_validate_json(cls, json_data: str | bytes | bytearray, **options: Any) -> Self:
        """Parse with Python's JSON reader, so that a lone surrogate or a ``NaN`` is reported at
        its field rather than as unreadable JSON; JSON it cannot read gets pydantic's own error."""
        try:
            data = json.loads(json_data)
        except (ValueError, RecursionError):
            return super().model_validate_json(json_data, **options)
        return cls.model_validate(data, **options)
