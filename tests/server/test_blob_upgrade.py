"""A database from before blob reference counts: its blobs are counted, none taken for garbage."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from taskpost.server.blobs import LocalBlobStore
from tests.server.blobs_helpers import blob_files, collect, output, refs
from tests.server.conftest import ManualClock, make_settings, running_api

pytestmark = pytest.mark.anyio

OLD_SCHEMA = Path(__file__).with_name("schema_v0.sql")
USED, UNUSED, OUTPUT = "a" * 32, "b" * 32, "c" * 32


async def _bytes(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def _old_data_dir(data: Path, now: float) -> None:
    """The first release's tables and blob directory: an upload a job uses, one no job uses, and a
    completed job's output."""
    store = LocalBlobStore(data / "blobs")  # makes data/ too
    for key in (USED, UNUSED, OUTPUT):
        await store.put(key, _bytes(key.encode()), max_bytes=100)
    entry = {"size": 32, "sha256": "0" * 64}
    with sqlite3.connect(data / "taskpost.db") as db:
        db.executescript(OLD_SCHEMA.read_text())
        for upload_id, key in (("used", USED), ("unused", UNUSED)):
            db.execute(
                "INSERT INTO uploads (id, name, blob_key, size, sha256, created_at)"
                " VALUES (?, 'f', ?, 32, ?, ?)",
                (upload_id, key, "0" * 64, now),
            )
        db.execute(
            "INSERT INTO jobs (id, type, state, priority, params, meta, attempts, max_attempts, retry,"
            " labels, inputs, outputs, created_at, cancel_requested)"
            " VALUES ('old-job', 'noop', 'completed', 1, '{}', '{}', 1, 3, '{}', '[]', ?, ?, ?, 0)",
            (
                json.dumps([{"name": "in", "blob_key": USED, **entry}]),
                json.dumps([{"name": "out.txt", "blob_key": OUTPUT, **entry}]),
                now,
            ),
        )
        # A corrupt row (JSON that does not parse) names nothing and does not stop the upgrade.
        db.execute(
            "INSERT INTO jobs (id, type, state, priority, params, meta, attempts, max_attempts, retry,"
            " labels, inputs, outputs, created_at, cancel_requested)"
            " VALUES ('corrupt', 'noop', 'dead', 1, '{}', '{}', 1, 3, '{}', '[]', '[{', 'nope', ?, 0)",
            (now,),
        )


async def test_existing_blobs_are_counted_and_only_the_unused_upload_expires(tmp_path: Path) -> None:
    clock = ManualClock()
    data = tmp_path / "data"
    await _old_data_dir(data, clock())
    settings = make_settings(data)
    async with running_api(settings, clock) as api:
        assert await refs(api) == {USED: 2, UNUSED: 1, OUTPUT: 1}
        # Old uploads count from when they were uploaded, not from the upgrade or from time zero.
        assert (await collect(api)).uploads == 0
        api.clock.advance(settings.upload_grace_s + 1)
        done = await collect(api)
        assert (done.uploads, done.blobs) == (2, 1)
        assert blob_files(api) == {USED, OUTPUT}
        assert await refs(api) == {USED: 1, OUTPUT: 1}
        assert (await output(api, "old-job", "out.txt")).content == OUTPUT.encode()
    async with running_api(settings, clock) as api:  # a second start changes nothing
        assert await refs(api) == {USED: 1, OUTPUT: 1}
    with sqlite3.connect(data / "taskpost.db") as db:
        indexes = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
        assert {"ix_uploads_last_used_at", "ix_blobs_refs"} <= indexes
