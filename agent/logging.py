"""Logging of the agent: JSON lines or readable text, with task fields on every line.

``configure_logging`` is called once, at the entry point. While a task runs, ``task_fields``
binds ``job_id`` and ``task_type`` in a context variable, and ``set_worker_id`` records the
worker id; ``ContextFieldsFilter`` copies them onto every record so handlers need no ``extra=``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
from collections.abc import Iterator
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, TextIO

STRUCTURED_FIELDS = ("job_id", "task_id", "task_type", "worker_id", "action")
"""Fields shown in a fixed order after the message (``task_id`` mirrors ``job_id``)."""

_task_fields: ContextVar[dict[str, str] | None] = ContextVar("taskpost_task_fields", default=None)
_worker: dict[str, str | None] = {"worker_id": None}

# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_RECORD_ATTRS = frozenset(vars(logging.LogRecord("x", logging.INFO, "x", 0, "x", None, None)).keys()) | {
    "message",
    "asctime",
    "taskName",
}


def set_worker_id(worker_id: str | None) -> None:
    """Record the worker id the coordinator gave this agent (for every following line)."""
    _worker["worker_id"] = worker_id


@contextlib.contextmanager
def task_fields(job_id: str, task_type: str) -> Iterator[None]:
    """Bind ``job_id`` and ``task_type`` to every line logged in this context (and its threads)."""
    token = _task_fields.set({"job_id": job_id, "task_type": task_type})
    try:
        yield
    finally:
        _task_fields.reset(token)


class ContextFieldsFilter(logging.Filter):
    """Adds worker_id, job_id/task_id and task_type to records that lack them."""

    def filter(self, record: logging.LogRecord) -> bool:
        fields = dict(_task_fields.get() or {})
        if _worker["worker_id"] is not None:
            fields["worker_id"] = _worker["worker_id"]
        for key, value in fields.items():
            if getattr(record, key, None) is None:
                setattr(record, key, value)
        job_id = getattr(record, "job_id", None) or getattr(record, "task_id", None)
        if job_id is not None:
            record.job_id = job_id
            record.task_id = job_id
        return True


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    extras = {key: getattr(record, key, None) for key in STRUCTURED_FIELDS}
    fields = {key: value for key, value in extras.items() if value is not None}
    for key, value in vars(record).items():
        if key not in _RECORD_ATTRS and key not in fields and key not in STRUCTURED_FIELDS:
            fields[key] = value
    return fields


class JsonFormatter(logging.Formatter):
    """One JSON object per line: timestamp, level, logger, message, then structured fields."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "timestamp": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        data.update(_extras(record))
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return json.dumps(data, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """``time LEVEL logger: message key=value ...`` for a terminal."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = datetime.fromtimestamp(record.created).strftime("%H:%M:%S")
        fields = _extras(record)
        fields.pop("task_id", None)
        suffix = "".join(f" {key}={value}" for key, value in fields.items())
        line = f"{stamp} {record.levelname:<7} {record.name}: {record.getMessage()}{suffix}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def configure_logging(level: str = "INFO", fmt: str = "json", stream: TextIO | None = None) -> None:
    """Send every log line to one stream handler (stderr by default), replacing earlier handlers."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(ContextFieldsFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
