"""What the CLI prints, without a coordinator: durations as people write them, and tables as plain
text off a terminal and in colour on one."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import pytest
import typer
from rich.console import Console

from taskpost import durations, render
from taskpost.protocol import KeyPublic, Role, Stats
from taskpost.protocol.admin import QueueCount, WorkerPublic

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "seconds"), [("45s", 45), ("30m", 1800), ("12h", 43200), ("90d", 7776000), ("1.5d", 129600)]
)
def test_durations_take_seconds_minutes_hours_and_days(text: str, seconds: float) -> None:
    assert durations.parse(text) == seconds


@pytest.mark.parametrize("text", ["90", "90 days", "1d2h", "-1d", "", "7w"])
def test_a_bad_duration_says_how_to_write_one(text: str) -> None:
    with pytest.raises(durations.InvalidDuration, match=r"e\.g\. 90s, 30m, 12h, 7d"):
        durations.parse(text)
    with pytest.raises(typer.BadParameter) as bad:
        durations.option(text, "--expires-in")
    assert bad.value.param_hint == "--expires-in"
    assert durations.option(None, "--expires-in") is None


def test_times_are_shown_as_ago_and_until() -> None:
    assert durations.ago(NOW - timedelta(seconds=12), NOW) == "12s ago"
    assert durations.ago(NOW - timedelta(hours=3, minutes=5), NOW) == "3h ago"
    assert durations.until(NOW + timedelta(days=89, hours=23), NOW) == "in 89d"
    assert durations.until(NOW - timedelta(seconds=1), NOW) == "expired"


def _stats() -> Stats:
    agent = WorkerPublic(
        id="w-1", name="gpu-0", worker_type="gpu", task_types=["transcription"], labels=["eu"],
        max_concurrent=2, version=None, host=None, registered_at=NOW, last_seen_at=NOW, running_tasks=1,
        draining=True, alive=True, namespaces=["acme"], allowed_task_types=["transcription"],
    )  # fmt: skip
    counts = [
        QueueCount(type="transcription", priority="high", state="failed", count=2),
        QueueCount(type="transcription", priority="high", state="completed", count=5),
        QueueCount(type="noop", priority="default", state="completed", count=1),
    ]
    return Stats(counts=counts, totals={"failed": 2, "completed": 6}, workers=[agent])


def test_info_shows_failed_jobs_as_retry_scheduled_and_the_agents_limits() -> None:
    jobs, agents = render.stats_tables(_stats())
    text = jobs.text()
    assert "retry scheduled" in text.splitlines()[1] and "failed" not in text
    assert text.splitlines()[2].split() == ["noop", "default", "0", "0", "0", "1", "0", "0", "0"]
    row = agents.text().splitlines()[2].split()
    assert row[:8] == ["gpu-0", "w-1", "gpu", "transcription", "eu", "acme", "transcription", "1/2"]
    assert row[-1] == "draining"
    [only] = render.stats_tables(_stats(), only_failures=True)[0].rows
    assert only == ["transcription", "high", "2", "0"]


def test_keys_show_their_limits_and_expiry() -> None:
    key = KeyPublic(
        id="k-1", prefix="tp_w_ab", role=Role.WORKER, name=None, namespaces=[], created_at=NOW,
        last_used_at=None, revoked_at=None, expires_at=datetime.now(UTC) + timedelta(days=30, hours=1),
        task_types=["ocr", "noop"],
    )  # fmt: skip
    [row] = render.keys_table([key]).rows
    assert row[3:5] == ["all", "ocr,noop"] and row[7] == "never" and row[-1] == "in 30d"


def test_off_a_terminal_tables_are_plain_and_on_one_in_colour(capsys: pytest.CaptureFixture[str]) -> None:
    table = render.Table(["state", "n"], [["dead", "3"], ["completed", "10"]])
    render.show(table)
    assert capsys.readouterr().out == "state      n\ndead       3\ncompleted  10\n"
    screen = io.StringIO()
    Console(file=screen, force_terminal=True, color_system="standard").print(table.rich())
    assert "\x1b[1;31mdead" in screen.getvalue() and "\x1b[32mcompleted" in screen.getvalue()
