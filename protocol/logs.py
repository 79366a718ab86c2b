"""Log lines shared by the coordinator and the agent: JSON lines or readable text.

``configure_logging`` is called once, at a process's entry point; each side passes the filters
that add its own context fields. Standard library only, like the rest of ``protocol``.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, Literal, TextIO

LogFormat = Literal["json", "text"]
LOG_LEVELS = ("CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG")

STRUCTURED_FIELDS = ("job_id", "task_id", "task_type", "worker_id", "action")
"""Fields shown in a fixed order after the message (``task_id`` mirrors ``job_id``)."""

CHATTY_LOGGERS = ("httpx", "httpcore", "aiosqlite", "multipart")
"""Libraries that log every request or query at INFO or DEBUG: kept at WARNING or above."""

# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_RECORD_ATTRS = frozenset(vars(logging.LogRecord("x", logging.INFO, "x", 0, "x", None, None)).keys()) | {
    "message",
    "asctime",
    "taskName",
    "color_message",  # uvicorn's copy of the message with terminal colours
}


def record_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The structured fields of ``record``: the known ones first, then any other ``extra=``."""
    known = {key: getattr(record, key, None) for key in STRUCTURED_FIELDS}
    fields = {key: value for key, value in known.items() if value is not None}
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
        data.update(record_fields(record))
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return json.dumps(data, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """``time LEVEL logger: message key=value ...`` for a terminal."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = datetime.fromtimestamp(record.created).strftime("%H:%M:%S")
        fields = record_fields(record)
        fields.pop("task_id", None)
        suffix = "".join(f" {key}={value}" for key, value in fields.items())
        line = f"{stamp} {record.levelname:<7} {record.name}: {record.getMessage()}{suffix}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def configure_logging(
    level: str = "INFO",
    fmt: LogFormat = "json",
    stream: TextIO | None = None,
    filters: Iterable[logging.Filter] = (),
) -> None:
    """Send every log line to one stream handler (stderr by default), replacing earlier handlers.

    ``filters`` run on every record before it is formatted (each side adds its context fields).
    """
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    for record_filter in filters:
        handler.addFilter(record_filter)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for chatty in CHATTY_LOGGERS:
        logging.getLogger(chatty).setLevel(max(logging.WARNING, root.level))
