"""Constrained field types of request models: names, identifiers, labels and their bounds."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator, Field, StrictInt

TASK_TYPE_PATTERN = r"^[a-z][a-z0-9_.-]{0,63}$"
"""A job type: what an agent may declare and a client may submit."""
FILE_NAME_PATTERN = r"^[^/\\\x00-\x1f\x7f-\x9f]+$"
"""One path segment: no slashes, NUL or control characters (``.`` and ``..`` are refused too)."""
RESERVED_FILE_NAMES = frozenset({".", ".."})

MAX_FILE_NAME_LENGTH = 255
MAX_ID_LENGTH = 200
"""Job ids, upload ids, lease tokens and idempotency keys."""
MAX_NAME_LENGTH = 200
"""Names people give to keys and agents."""
MAX_LABELS = 64
MAX_LABEL_LENGTH = 1024
"""Long enough for a ``files-root:`` label that carries a directory path."""
MAX_TASK_TYPES = 256
MAX_INPUTS = 1000
MAX_MESSAGE_LENGTH = 1000
"""Progress messages and release reasons."""
MAX_ERROR_TEXT_LENGTH = 20_000
"""An attempt's error message and traceback; the agent cuts longer ones."""
MAX_JSON_DEPTH = 64
"""How deeply free-form JSON (``params``, ``meta``, a result) may nest."""

_FILE_NAME = re.compile(FILE_NAME_PATTERN)


def is_safe_file_name(name: str) -> bool:
    """Whether ``name`` can be a file in one directory on every agent, and nothing else."""
    return (
        len(name) <= MAX_FILE_NAME_LENGTH
        and name not in RESERVED_FILE_NAMES
        and _FILE_NAME.fullmatch(name) is not None
    )


def _check_file_name(name: str) -> str:
    if name in RESERVED_FILE_NAMES:
        raise ValueError(f"a file name may not be {name!r}")
    return name


FileName = Annotated[
    str,
    Field(
        min_length=1,
        max_length=MAX_FILE_NAME_LENGTH,
        pattern=FILE_NAME_PATTERN,
        json_schema_extra={"not": {"enum": sorted(RESERVED_FILE_NAMES)}},
    ),
    AfterValidator(_check_file_name),
]


def _integral_number(value: object) -> object:
    # JSON has one number type: 3.0 is the integer 3 for JSON (and JSON Schema's "integer"),
    # where a strict int would refuse it. True and "3" stay refused.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


JsonInt = Annotated[StrictInt, BeforeValidator(_integral_number)]
"""An integer as JSON sees one: ``3`` or ``3.0``, never ``true`` or ``"3"``."""
TaskType = Annotated[str, Field(pattern=TASK_TYPE_PATTERN, max_length=64)]
Label = Annotated[str, Field(min_length=1, max_length=MAX_LABEL_LENGTH)]
Identifier = Annotated[str, Field(min_length=1, max_length=MAX_ID_LENGTH)]
