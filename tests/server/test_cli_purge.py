"""``taskpost purge`` through a real coordinator (uvicorn) over HTTP, on a real SQLite file."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from sqlalchemy import select
from typer.testing import CliRunner

from taskpost import durations
from taskpost.cli import app
from taskpost.server.db.database import Database
from taskpost.server.services import retention
from taskpost.server.services.jobs import JOBS
from tests.agent.live import listening_socket, new_key, served_coordinator
from tests.server.conftest import ADMIN_KEY, ManualClock, make_settings, running_api
from tests.server.retention_helpers import Finisher

pytestmark = pytest.mark.anyio

DAY_S = 86400.0


async def _jobs_of_two_ages(data_dir: Path) -> dict[str, str]:
    """Finished jobs that ended 8 days ago and 1 day ago, and a queued one: name -> job id."""
    clock = ManualClock()
    clock.now = time.time() - 8 * DAY_S
    async with running_api(make_settings(data_dir), clock) as api:
        finisher = Finisher(api)
        made = {
            "old_dead": (await finisher.finish("dead"))["id"],
            "old_completed": (await finisher.finish("completed"))["id"],
        }
        clock.advance(7 * DAY_S)
        made["recent_dead"] = (await finisher.finish("dead"))["id"]
        made["queued"] = (await api.submit())["id"]
    return made


async def _remaining(data_dir: Path) -> set[str]:
    """The jobs in the database, read without starting a coordinator (whose reaper would apply retention)."""
    db = Database(make_settings(data_dir).resolved_database_url())
    try:
        async with db.read() as conn:
            return set((await conn.execute(select(JOBS.c.id))).scalars())
    finally:
        await db.close()


def _purge(url: str, *args: str, answer: str | None = None, api_key: str = ADMIN_KEY) -> Result:
    """The command in this thread (async tests call it in another: the coordinator runs in their loop)."""
    return CliRunner().invoke(
        app,
        ["purge", *args],
        input=answer,
        env={"TASKPOST_SERVER_URL": url, "TASKPOST_API_KEY": api_key, "TASKPOST_ADMIN_KEY": ""},
    )


@asynccontextmanager
async def _served(data_dir: Path, **settings: Any) -> AsyncIterator[str]:
    """The coordinator on ``data_dir`` behind uvicorn, retention off (the purge is the test's to do)."""
    values = {"retain_dead_s": 0.0, "retain_completed_s": 0.0, **settings}
    async with served_coordinator(
        make_settings(data_dir).model_copy(update=values), listening_socket()
    ) as url:
        yield url


async def test_a_purge_asks_first_and_deletes_only_what_it_counted(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    made = await _jobs_of_two_ages(data_dir)
    async with _served(data_dir) as url:
        declined = await asyncio.to_thread(_purge, url, "--state", "dead", "--older-than", "7d", answer="n\n")
        assert declined.exit_code == 1, declined.output
        assert "Delete 1 job (dead 1)" in declined.stderr and "aborted: nothing deleted" in declined.stderr
        assert await _remaining(data_dir) == set(made.values())
        dry = await asyncio.to_thread(
            _purge, url, "--state", "dead", "--state", "completed", "--older-than", "2d", "--dry-run"
        )
        assert dry.exit_code == 0, dry.output
        assert dry.stdout.startswith("would delete 2 jobs (dead 1, completed 1)")
        assert await _remaining(data_dir) == set(made.values())
        accepted = await asyncio.to_thread(_purge, url, "--state", "dead", "--older-than", "7d", answer="y\n")
        assert accepted.exit_code == 0, accepted.output
        assert "\ndeleted 1 job (dead 1) that ended by " in accepted.stdout  # after the echoed answer
        assert await _remaining(data_dir) == {made["old_completed"], made["recent_dead"], made["queued"]}


async def test_a_purge_with_yes_calls_until_done_and_prints_json(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data_dir = tmp_path / "data"
    made = await _jobs_of_two_ages(data_dir)
    monkeypatch.setattr(retention, "BATCHES_PER_REQUEST", 1)  # with batches of 1: one job per call
    args = ["--state", "dead", "--state", "completed", "--older-than", "36h", "--yes", "--json"]
    async with _served(data_dir, retention_batch_size=1) as url:
        result = await asyncio.to_thread(_purge, url, *args)
        assert result.exit_code == 0, result.output
        summary = json.loads(result.stdout)
        assert summary["jobs"] == {"dead": 1, "completed": 1} and summary["dry_run"] is False
        assert await _remaining(data_dir) == {made["recent_dead"], made["queued"]}
        # No prompt: none match.
        nothing = await asyncio.to_thread(_purge, url, "--state", "dead", "--older-than", "2d", "--json")
        assert nothing.exit_code == 0 and json.loads(nothing.stdout)["jobs"] == {"dead": 0}
        text = await asyncio.to_thread(_purge, url, "--state", "dead", "--older-than", "2d")
        assert text.exit_code == 0 and text.stdout.startswith("nothing to delete: no dead job that ended by ")


@pytest.mark.parametrize("duration", ["7", "7w", "-1d", "d", "1d2h", "", "seven days"])
def test_a_bad_duration_is_a_usage_error_that_says_how_to_write_one(duration: str) -> None:
    # No coordinator listens there: the duration is refused before any request.
    result = _purge("http://127.0.0.1:9", "--state", "dead", "--older-than", duration, "--yes")
    assert result.exit_code == 2
    assert "invalid duration" in result.output and "7d" in result.output


@pytest.mark.parametrize(("text", "seconds"), [("90s", 90), ("30m", 1800), ("12h", 43200), ("1.5d", 129600)])
def test_durations_take_seconds_minutes_hours_and_days(text: str, seconds: float) -> None:
    assert durations.parse(text) == seconds


def test_a_state_a_job_can_leave_is_not_offered() -> None:
    result = _purge("http://127.0.0.1:9", "--state", "queued", "--older-than", "1d", "--yes")
    assert result.exit_code == 2 and "queued" in result.output


async def test_a_purge_needs_an_admin_key(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    made = await _jobs_of_two_ages(data_dir)
    async with _served(data_dir) as url:
        client_key = await new_key(url, "client")
        args = ["--state", "dead", "--older-than", "7d", "--yes", "--json"]
        refused = await asyncio.to_thread(_purge, url, *args, api_key=client_key)
        assert refused.exit_code == 1 and "HTTP 403" in refused.stderr, refused.output
        done = await asyncio.to_thread(_purge, url, *args)
        assert done.exit_code == 0, done.output
        assert json.loads(done.stdout)["jobs"] == {"dead": 1}
    assert await _remaining(data_dir) == {made["old_completed"], made["recent_dead"], made["queued"]}
