"""How keys and files are kept: configured keys with scrypt, private files, no key in a log."""

from __future__ import annotations

import hashlib
import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import ValidationError
from sqlalchemy import select
from typer.testing import CliRunner

from taskpost.cli import app as cli_app
from taskpost.protocol import API_PREFIX
from taskpost.server.app import create_app
from taskpost.server.coordinator import Coordinator
from taskpost.server.services import key_hashes
from taskpost.server.services.keys import KEYS
from taskpost.server.settings import Settings
from tests.server.conftest import ADMIN_KEY, Api, ManualClock, make_settings, running_api

pytestmark = pytest.mark.anyio


def test_a_short_configured_admin_key_is_refused_at_start(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="TASKPOST_ADMIN_KEY must be at least 32 characters"):
        Settings(admin_key="x" * 31, _env_file=None)
    assert Settings(admin_key="x" * 32, _env_file=None).admin_key is not None
    assert Settings(admin_key="", _env_file=None).admin_key is None  # TASKPOST_ADMIN_KEY= means unset
    result = CliRunner().invoke(
        cli_app,
        ["server", "--data-dir", str(tmp_path / "data"), "--port", "1"],
        env={"TASKPOST_ADMIN_KEY": "admin"},
    )
    assert result.exit_code == 1
    assert "TASKPOST_ADMIN_KEY must be at least 32 characters" in result.output
    assert not (tmp_path / "data").exists()


async def test_a_configured_key_is_kept_with_salted_scrypt(api: Api) -> None:
    async with api.coord.db.read() as conn:
        row = (await conn.execute(select(KEYS).where(KEYS.c.role == "admin"))).one()
    assert row.hash_scheme == "scrypt" and row.salt
    assert row.hash != hashlib.sha256(ADMIN_KEY.encode()).hexdigest()
    expected = hashlib.scrypt(ADMIN_KEY.encode(), salt=bytes.fromhex(row.salt), n=2**14, r=8, p=1, dklen=32)
    assert row.hash == expected.hex()
    assert row.prefix.startswith("cfg_") and ADMIN_KEY[:4] not in row.prefix
    listed = (await api.http.get(f"{API_PREFIX}/keys", headers=api.auth("admin"))).json()
    assert next(k for k in listed if k["id"] == row.id)["prefix"] == row.prefix
    client = (await api.http.get(f"{API_PREFIX}/keys", headers=api.auth("admin"))).json()
    assert all(k["prefix"].startswith("tp_") for k in client if k["role"] != "admin")


@pytest.fixture
def scrypt_calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Counts the real scrypt runs."""
    calls: list[str] = []
    real = key_hashes._scrypt

    def counted(raw: str, salt_hex: str) -> str:
        calls.append(salt_hex)
        return real(raw, salt_hex)

    monkeypatch.setattr(key_hashes, "_scrypt", counted)
    yield calls


async def test_the_slow_hash_runs_once_per_process_but_revocation_is_read_every_time(
    tmp_path: Path, scrypt_calls: list[str]
) -> None:
    settings = make_settings(tmp_path / "data")
    async with running_api(settings, ManualClock()) as api:
        assert len(scrypt_calls) == 1  # storing it at the first start
        for _ in range(5):
            assert (await api.http.get(f"{API_PREFIX}/keys", headers=api.auth("admin"))).status_code == 200
        assert len(scrypt_calls) == 1
    scrypt_calls.clear()
    async with running_api(settings, ManualClock()) as api:
        for _ in range(3):
            assert (await api.http.get(f"{API_PREFIX}/keys", headers=api.auth("admin"))).status_code == 200
        assert len(scrypt_calls) == 1  # finding it again at the second start
        admin_id = next(
            k["id"] for k in (await api.http.get(f"{API_PREFIX}/keys", headers=api.auth("admin"))).json()
        )
        other_admin = await api.new_key("admin")  # a key cannot revoke itself
        revoked = await api.http.delete(f"{API_PREFIX}/keys/{admin_id}", headers=other_admin)
        assert revoked.status_code == 200
        after = await api.http.get(f"{API_PREFIX}/keys", headers=api.auth("admin"))
        assert after.status_code == 401 and "revoked" in after.json()["error"]["message"]


async def test_the_bootstrap_key_goes_to_the_terminal_never_to_a_log_handler(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG)
    settings = Settings(data_dir=tmp_path / "data", reaper_interval_s=3600, _env_file=None)
    coord = Coordinator.from_settings(settings)
    app = create_app(settings, coord)
    async with app.router.lifespan_context(app):
        pass
    printed = capsys.readouterr().err
    [key] = [line.strip() for line in printed.splitlines() if line.strip().startswith("tp_a_")]
    assert caplog.records, "nothing was logged at all: the check below would prove nothing"
    # Its public prefix may appear (the SQL debug lines of the insert); the key itself never.
    assert all(
        key not in record.getMessage() and key not in str(record.__dict__) for record in caplog.records
    )


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_the_database_and_blobs_are_private(tmp_path: Path) -> None:
    old_umask = os.umask(0o022)
    try:
        settings = make_settings(tmp_path / "data")
        async with running_api(settings, ManualClock()) as api:
            upload = await api.http.post(
                f"{API_PREFIX}/uploads?name=a.txt", content=b"x", headers=api.auth("client")
            )
            assert upload.status_code == 201
            data = tmp_path / "data"
            assert _mode(data) == 0o700
            assert _mode(data / "taskpost.db") == 0o600
            assert _mode(data / "taskpost.db-wal") == 0o600
            blobs = data / "blobs"
            assert _mode(blobs) == 0o700
            files = [p for p in blobs.rglob("*") if p.is_file()]
            assert files and all(_mode(p) == 0o600 for p in files)
            assert all(_mode(p) == 0o700 for p in blobs.rglob("*") if p.is_dir())
    finally:
        os.umask(old_umask)


async def test_files_an_earlier_version_left_readable_are_made_private(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "taskpost.db").touch(mode=0o644)
    (data / "taskpost.db").chmod(0o644)
    async with running_api(make_settings(data), ManualClock()):
        assert _mode(data / "taskpost.db") == 0o600
