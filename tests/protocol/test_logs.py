"""The log lines both sides share: one handler, JSON or text, structured fields, extra filters."""

from __future__ import annotations

import io
import json
import logging
import sys
from collections.abc import Iterator

import pytest

from taskpost.protocol.logs import CHATTY_LOGGERS, JsonFormatter, TextFormatter, configure_logging


class _Tag(logging.Filter):
    """Adds ``worker_id`` to every record, as a side's context filter would."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.worker_id = "w-1"
        return True


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    saved = root.handlers[:], root.level, {name: logging.getLogger(name).level for name in CHATTY_LOGGERS}
    yield
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])
    for name, level in saved[2].items():
        logging.getLogger(name).setLevel(level)


@pytest.mark.usefixtures("restore_logging")
def test_one_json_handler_with_the_given_filters_and_quiet_libraries() -> None:
    stream = io.StringIO()
    configure_logging("DEBUG", "json", stream=stream)
    configure_logging("info", "json", stream=stream, filters=[_Tag()])
    root = logging.getLogger()
    assert [type(h.formatter) for h in root.handlers] == [JsonFormatter]
    assert root.level == logging.INFO
    assert all(logging.getLogger(name).level == logging.WARNING for name in CHATTY_LOGGERS)

    logging.getLogger("tests.protocol").info("gave %d leases", 2, extra={"action": "restart", "tasks": 2})
    logging.getLogger("tests.protocol").debug("not shown")
    [line] = [json.loads(text) for text in stream.getvalue().splitlines()]
    assert line["message"] == "gave 2 leases" and line["logger"] == "tests.protocol"
    assert (line["action"], line["tasks"], line["worker_id"]) == ("restart", 2, "w-1")


def _record(**extra: object) -> logging.LogRecord:
    record = logging.LogRecord("uvicorn.error", logging.INFO, __file__, 1, "started %s", ("now",), None)
    record.__dict__.update(extra)
    return record


def test_structured_fields_come_first_in_a_fixed_order_and_colours_are_dropped() -> None:
    record = _record(attempt=2, action="claim", job_id="j-1", color_message="\x1b[1mstarted\x1b[0m")
    data = json.loads(JsonFormatter().format(record))
    assert list(data) == ["timestamp", "level", "logger", "message", "job_id", "action", "attempt"]
    assert data["message"] == "started now"


def test_text_lines_are_readable() -> None:
    line = TextFormatter().format(_record(job_id="j-1", task_id="j-1", action="claim"))
    assert line.endswith(" INFO    uvicorn.error: started now job_id=j-1 action=claim")


def test_exceptions_are_kept_in_both_formats() -> None:
    try:
        raise ValueError("bad input")
    except ValueError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", None, sys.exc_info())
    assert "ValueError: bad input" in json.loads(JsonFormatter().format(record))["exception"]
    assert "ValueError: bad input" in TextFormatter().format(record)
