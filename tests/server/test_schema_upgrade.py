"""A database made by the first release keeps working: new columns are added, constraints rebuilt."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from taskpost.protocol import API_PREFIX
from taskpost.server.services.keys import KEYS
from tests.server.conftest import ADMIN_KEY, ManualClock, make_settings, running_api

pytestmark = pytest.mark.anyio

OLD_SCHEMA = Path(__file__).with_name("schema_v0.sql")
OLD_CLIENT_KEY = "tp_c_" + "k" * 43


def _old_database(data: Path) -> None:
    """The first release's tables, with a job, a client key, the configured admin key (kept as
    plain SHA-256 with its first characters as prefix, as that release did), an upload and a type."""
    data.mkdir(parents=True)
    now = time.time()
    with sqlite3.connect(data / "taskpost.db") as db:
        db.executescript(OLD_SCHEMA.read_text())
        for key_id, raw, role in [("admin-1", ADMIN_KEY, "admin"), ("client-1", OLD_CLIENT_KEY, "client")]:
            db.execute(
                "INSERT INTO api_keys (id, prefix, hash, role, name, created_at) VALUES (?, ?, ?, ?, ?, ?)",
                (key_id, raw[:12], hashlib.sha256(raw.encode()).hexdigest(), role, None, now),
            )
        db.execute(
            "INSERT INTO jobs (id, type, state, priority, params, meta, attempts, max_attempts, retry,"
            " labels, idempotency_key, inputs, outputs, created_at, cancel_requested)"
            " VALUES ('old-job', 'noop', 'queued', 1, '{\"n\": 1}', '{}', 0, 3, '{}', '[]', 'order-7',"
            " '[]', '[]', ?, 0)",
            (now,),
        )
        db.execute(
            "INSERT INTO uploads (id, name, blob_key, size, sha256, created_at)"
            " VALUES ('old-upload', 'a.txt', 'abc', 1, ?, ?)",
            ("0" * 64, now),
        )
        db.execute("INSERT INTO job_types (name, first_seen_at) VALUES ('resize', ?)", (now,))


async def test_a_first_release_database_is_upgraded_in_place(tmp_path: Path) -> None:
    data = tmp_path / "data"
    _old_database(data)
    settings = make_settings(data)
    for start in range(2):  # the second start finds nothing left to upgrade
        async with running_api(settings, ManualClock()) as api:
            old_client = {"Authorization": f"Bearer {OLD_CLIENT_KEY}"}
            job = await api.job("old-job", headers=old_client)
            assert job["namespace"] == "default" and job["params"] == {"n": 1}
            again = await api.submit(expect=200, headers=old_client, idempotency_key="order-7")
            assert again["id"] == "old-job"
            acme = await api.new_key("client", "acme")
            if start == 0:
                theirs = await api.submit(headers=acme, idempotency_key="order-7")
                assert theirs["id"] != "old-job" and theirs["namespace"] == "acme"
            used = await api.submit(headers=old_client, inputs=[{"name": "a.txt", "upload_id": "old-upload"}])
            assert used["inputs"][0]["name"] == "a.txt"
            await api.submit(expect=404, headers=acme, inputs=[{"name": "a.txt", "upload_id": "old-upload"}])
            assert (await api.submit(headers=old_client, type="resize"))["type"] == "resize"
            listed = (await api.http.get(f"{API_PREFIX}/keys", headers=api.auth("admin"))).json()
            assert next(k for k in listed if k["id"] == "client-1")["namespaces"] == ["default"]
            async with api.coord.db.read() as conn:
                admin = (await conn.execute(select(KEYS).where(KEYS.c.id == "admin-1"))).one()
            # The configured key's plain SHA-256 and its first characters are gone from the file.
            assert admin.hash_scheme == "scrypt" and admin.prefix == "cfg_admin-1"
            assert admin.hash != hashlib.sha256(ADMIN_KEY.encode()).hexdigest()
    with sqlite3.connect(data / "taskpost.db") as db:
        tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert "jobs_before_upgrade" not in tables
        indexes = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
        assert {"ix_jobs_claim", "ix_jobs_namespace_seq"} <= indexes
        namespaces = dict(db.execute("SELECT id, namespace FROM jobs").fetchall())
        assert namespaces["old-job"] == "default"
        assert (
            json.loads(db.execute("SELECT namespaces FROM api_keys WHERE id = 'client-1'").fetchone()[0])
            == []
        )
