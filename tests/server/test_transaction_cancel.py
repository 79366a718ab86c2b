"""A request cancelled in the middle of a transaction leaves no connection or lock behind.

Starlette cancels a request's task through an anyio cancel scope, which cancels every await
again, the transaction's own rollback included (server.db.transactions).
"""

from __future__ import annotations

import gc
import sqlite3
from pathlib import Path

import anyio
import pytest
from sqlalchemy import text

from taskpost.server.db.database import Database

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def _insert_forever(db: Database) -> None:
    async with db.write() as conn:
        for i in range(10**7):
            await conn.execute(text("INSERT INTO t VALUES (:x)"), {"x": i})


async def test_cancelled_writes_release_the_lock_and_the_connection(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'cancel.db'}")
    async with db.write() as conn:
        await conn.execute(text("CREATE TABLE t (x INTEGER)"))
    try:
        for step in range(30):
            async with anyio.create_task_group() as group:
                group.start_soon(_insert_forever, db)
                await anyio.sleep(step * 0.002)
                group.cancel_scope.cancel()
            gc.collect()
            await db.ends.wait_all()
            assert db.engine.pool.checkedout() == 0, f"a connection is still out after cancel {step}"
            other = sqlite3.connect(tmp_path / "cancel.db", timeout=0.5, isolation_level=None)
            try:
                other.execute("BEGIN IMMEDIATE")
                other.execute("ROLLBACK")
            finally:
                other.close()
        async with db.read() as conn:
            rows = (await conn.execute(text("SELECT count(*) FROM t"))).scalar()
        assert rows == 0, "a cancelled write committed"
    finally:
        await db.close()
