"""Log lines shared by the coordinator and the agent: JSON lines or readable text.

``configure_logging`` is called once, at a process's entry point; each side passes the filters
that add its own context fields. A run of identical lines is thinned to one per window
(``RepeatFilter``): a failure that repeats in a tight loop, such as ``accept()`` failing while the
process is out of file descriptors, must not flood the log. Standard library only, like the rest
of ``protocol``.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
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


@dataclass(slots=True)
class _Run:
    passed_at: float
    """When the last record of this kind was let through."""
    suppressed: int = 0
    """How many have been dropped since."""


class RepeatFilter(logging.Filter):
    """Lets one of a run of identical records through per ``window_s``; counts the others.

    Records are identical when their logger, level, first line of message (asyncio appends
    details that change on every repeat), structured fields and exception type are. The first
    one let through after a window carries ``repeats_suppressed``: how many were dropped.
    """

    def __init__(
        self, window_s: float = 10.0, clock: Callable[[], float] = time.monotonic, max_kinds: int = 1024
    ) -> None:
        super().__init__()
        self.window_s = window_s
        self._clock = clock
        self._max_kinds = max_kinds
        self._lock = threading.Lock()
        self._runs: OrderedDict[tuple[object, ...], _Run] = OrderedDict()

    def filter(self, record: logging.LogRecord) -> bool:
        kind = _record_kind(record)
        with self._lock:
            now = self._clock()
            run = self._runs.get(kind)
            if run is not None and now - run.passed_at < self.window_s:
                run.suppressed += 1
                return False
            suppressed = run.suppressed if run is not None else 0
            self._runs[kind] = _Run(now)
            self._runs.move_to_end(kind)
            while len(self._runs) > self._max_kinds:
                self._runs.popitem(last=False)
        if suppressed:
            record.repeats_suppressed = suppressed
        return True


def _record_kind(record: logging.LogRecord) -> tuple[object, ...]:
    try:
        message = record.getMessage()
    except Exception:  # a bad format string is the formatter's to report
        message = str(record.msg)
    headline = message.partition("\n")[0]
    fields = tuple(sorted((key, repr(value)) for key, value in record_fields(record).items()))
    exception = record.exc_info[0] if record.exc_info else None
    return (record.name, record.levelno, headline, fields, exception)


def configure_logging(
    level: str = "INFO",
    fmt: LogFormat = "json",
    stream: TextIO | None = None,
    filters: Iterable[logging.Filter] = (),
    repeat_window_s: float | None = 10.0,
) -> None:
    """Send every log line to one stream handler (stderr by default), replacing earlier handlers.

    ``filters`` run on every record before it is formatted (each side adds its context fields);
    then identical records are thinned to one per ``repeat_window_s`` (None: all pass).
    """
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    for record_filter in filters:
        handler.addFilter(record_filter)
    if repeat_window_s is not None:
        handler.addFilter(RepeatFilter(repeat_window_s))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for chatty in CHATTY_LOGGERS:
        logging.getLogger(chatty).setLevel(max(logging.WARNING, root.level))
