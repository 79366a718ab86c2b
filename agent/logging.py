"""Logging of the agent: the shared JSON or text lines, with task fields on every line.

``configure_logging`` is called once, at the entry point. While a task runs, ``task_fields``
binds ``job_id`` and ``task_type`` in a context variable, and ``set_worker_id`` records the
worker id; ``ContextFieldsFilter`` copies them onto every record so handlers need no ``extra=``.
The formatters themselves live in ``protocol.logs``, shared with the coordinator.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from contextvars import ContextVar
from typing import TextIO

from taskpost.protocol import logs
from taskpost.protocol.logs import STRUCTURED_FIELDS, JsonFormatter, LogFormat, TextFormatter

__all__ = [
    "STRUCTURED_FIELDS",
    "ContextFieldsFilter",
    "JsonFormatter",
    "TextFormatter",
    "configure_logging",
    "set_worker_id",
    "task_fields",
]

_task_fields: ContextVar[dict[str, str] | None] = ContextVar("taskpost_task_fields", default=None)
_worker: dict[str, str | None] = {"worker_id": None}


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


def configure_logging(level: str = "INFO", fmt: LogFormat = "json", stream: TextIO | None = None) -> None:
    """The shared ``protocol.logs.configure_logging``, with the agent's task and worker fields."""
    logs.configure_logging(level, fmt, stream, filters=[ContextFieldsFilter()])
