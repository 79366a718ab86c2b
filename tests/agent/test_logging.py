"""Structured logging: JSON lines with task fields, and the readable text format."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from taskpost.agent.logging import (
    ContextFieldsFilter,
    JsonFormatter,
    TextFormatter,
    configure_logging,
    set_worker_id,
    task_fields,
)


@pytest.fixture
def capture() -> Iterator[tuple[logging.Logger, io.StringIO, logging.Handler]]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(ContextFieldsFilter())
    logger = logging.getLogger("tests.agent.logging")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    yield logger, stream, handler
    logger.removeHandler(handler)
    set_worker_id(None)


def test_json_lines_carry_task_and_worker_fields(
    capture: tuple[logging.Logger, io.StringIO, logging.Handler],
) -> None:
    logger, stream, handler = capture
    handler.setFormatter(JsonFormatter())
    set_worker_id("w-7")
    with task_fields("job-1", "noop"):
        logger.info("Processing task %s", "now", extra={"action": "task_started"})
    logger.warning("outside")
    inside, outside = (json.loads(line) for line in stream.getvalue().splitlines())
    assert inside["message"] == "Processing task now"
    assert inside["level"] == "INFO" and inside["logger"] == "tests.agent.logging"
    assert inside["job_id"] == inside["task_id"] == "job-1"
    assert inside["task_type"] == "noop"
    assert inside["worker_id"] == "w-7"
    assert inside["action"] == "task_started"
    assert inside["timestamp"].endswith("Z")
    assert outside["worker_id"] == "w-7"
    assert "job_id" not in outside and "task_type" not in outside


def test_explicit_extra_wins_and_other_extras_are_kept(
    capture: tuple[logging.Logger, io.StringIO, logging.Handler],
) -> None:
    logger, stream, handler = capture
    handler.setFormatter(JsonFormatter())
    with task_fields("job-1", "noop"):
        logger.info("x", extra={"job_id": "job-2", "attempt": 3})
    line = json.loads(stream.getvalue())
    assert line["job_id"] == "job-2" and line["attempt"] == 3


def test_exceptions_are_included(capture: tuple[logging.Logger, io.StringIO, logging.Handler]) -> None:
    logger, stream, handler = capture
    handler.setFormatter(JsonFormatter())
    try:
        raise ValueError("bad")
    except ValueError:
        logger.exception("failed")
    assert "ValueError: bad" in json.loads(stream.getvalue())["exception"]


def test_text_format(capture: tuple[logging.Logger, io.StringIO, logging.Handler]) -> None:
    logger, stream, handler = capture
    handler.setFormatter(TextFormatter())
    with task_fields("job-1", "noop"):
        logger.info("hello")
    line = stream.getvalue()
    assert "INFO" in line and "hello" in line and "job_id=job-1" in line and "task_type=noop" in line
    assert "task_id" not in line


def test_configure_logging_installs_one_handler() -> None:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    stream = io.StringIO()
    try:
        configure_logging("DEBUG", "json", stream=stream)
        configure_logging("INFO", "json", stream=stream)
        ours = [h for h in root.handlers if isinstance(h.formatter, JsonFormatter)]
        assert len(ours) == 1
        logging.getLogger("tests.agent").info("Waiting for tasks")
        assert json.loads(stream.getvalue().splitlines()[-1])["message"] == "Waiting for tasks"
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
