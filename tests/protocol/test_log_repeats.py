"""A run of identical log lines is thinned to one per window, and the next one says how many were
dropped: a failure repeating in a tight loop must not flood the log."""

from __future__ import annotations

import io
import json
import logging

from taskpost.protocol.logs import RepeatFilter, configure_logging


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _record(message: str, level: int = logging.ERROR, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord("asyncio", level, __file__, 1, message, None, None)
    record.__dict__.update(extra)
    return record


def test_identical_records_pass_once_per_window_and_the_next_counts_the_dropped() -> None:
    clock = _Clock()
    repeats = RepeatFilter(window_s=10, clock=clock)
    first = _record("socket.accept() out of system resource\nsocket: <fd=9>")
    assert repeats.filter(first)
    assert not hasattr(first, "repeats_suppressed")
    # asyncio adds details after the first line that differ on every repeat.
    assert not any(
        repeats.filter(_record(f"socket.accept() out of system resource\nwhen={i}")) for i in range(500)
    )

    clock.now += 10
    after_the_window = _record("socket.accept() out of system resource")
    assert repeats.filter(after_the_window)
    assert getattr(after_the_window, "repeats_suppressed", None) == 500
    assert not repeats.filter(_record("socket.accept() out of system resource"))


def test_records_that_differ_in_level_fields_or_headline_all_pass() -> None:
    repeats = RepeatFilter(window_s=10, clock=_Clock())
    records = [
        _record("task finished", job_id="j-1"),
        _record("task finished", job_id="j-2"),
        _record("task finished", level=logging.WARNING, job_id="j-1"),
        _record("task failed", job_id="j-1"),
    ]
    assert all(repeats.filter(record) for record in records)


def test_configure_logging_thins_a_flood_to_one_line() -> None:
    stream = io.StringIO()
    configure_logging("INFO", "json", stream=stream)
    for _ in range(10_000):
        logging.getLogger("asyncio").error("socket.accept() out of system resource")
    logging.getLogger("taskpost.server.app").info("still logging other lines")
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [line["message"] for line in lines] == [
        "socket.accept() out of system resource",
        "still logging other lines",
    ]


def test_configure_logging_can_let_every_line_through() -> None:
    stream = io.StringIO()
    configure_logging("INFO", "text", stream=stream, repeat_window_s=None)
    for _ in range(3):
        logging.getLogger("tests").warning("again")
    assert stream.getvalue().count("again") == 3
