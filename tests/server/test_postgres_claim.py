"""The PostgreSQL claim: one UPDATE over a SKIP LOCKED subquery that walks ix_jobs_claim.

The claim's semantics (types, labels, namespaces, worker types, priorities) are tested on both
databases by the other server tests; these are about what only PostgreSQL has: its planner on a
table with history, row locks held by other transactions, and several coordinators at once.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select, text

from taskpost.protocol import API_PREFIX
from taskpost.server.services.jobs import JOBS
from tests.conftest import postgres_only
from tests.server.conftest import Api, ManualClock, running_api

pytestmark = [pytest.mark.anyio, postgres_only]

# Jobs of several types, namespaces, priorities and labels, straight into the table: a realistic
# history is thousands of finished jobs around the few that are queued.
_FILL = """
INSERT INTO jobs (id, namespace, type, state, priority, params, meta, attempts, max_attempts, retry,
                  labels, inputs, outputs, created_at, ended_at, cancel_requested)
SELECT md5(:tag || i), CASE WHEN i % 3 = 0 THEN 'acme' ELSE 'default' END,
       CASE WHEN i % 2 = 0 THEN 'noop' ELSE 'ocr' END, :state, i % 3,
       '{}', '{}', 1, 3, '{}', CASE WHEN i % 5 = 0 THEN '["eu"]' ELSE '[]' END, '[]', '[]', i, i, false
FROM generate_series(1, :count) AS i
"""


def _plan_nodes(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield node
    for child in node.get("Plans", []):
        yield from _plan_nodes(child)


async def _fill(api: Api, state: str, count: int) -> None:
    async with api.coord.db.write() as conn:
        await conn.execute(text(_FILL), {"tag": state, "state": state, "count": count})


async def test_the_claim_walks_ix_jobs_claim_under_its_limit_on_a_table_with_history(api: Api) -> None:
    await _fill(api, "completed", 20_000)
    await _fill(api, "dead", 2_000)
    await _fill(api, "queued", 300)
    await _fill(api, "processing", 50)
    async with api.coord.db.engine.connect() as conn:
        await conn.execute(text("ANALYZE jobs"))
        await conn.commit()
    dialect = api.coord.db.dialect
    for namespaces in [(), ("acme",), ("acme", "globex")]:
        for with_labels in (False, True):
            statement = dialect.claim_statement(
                type_count=2, with_labels=with_labels, namespace_count=len(namespaces)
            )
            params: dict[str, object] = {
                "worker_id": "w",
                "now": 0.0,
                "lease_expires_at": 1.0,
                "limit": 5,
                "worker_type": "cpu",
                "type_0": "noop",
                "type_1": "ocr",
                "worker_labels": json.dumps(["eu"]),
                **{f"namespace_{i}": name for i, name in enumerate(namespaces)},
            }
            async with api.coord.db.read() as conn:
                explain = text(f"EXPLAIN (FORMAT JSON) {statement.element.text}")
                [document] = (await conn.execute(explain, params)).scalar_one()
            nodes = list(_plan_nodes(document["Plan"]))
            kinds = [node["Node Type"] for node in nodes]
            case = f"namespaces={namespaces} labels={with_labels}: {kinds}"
            assert "Sort" not in kinds and "Seq Scan" not in kinds, case
            # The queued rows come from ix_jobs_claim in claim order, and are locked under the
            # LIMIT: no more than :limit rows are ever locked (the subquery runs once).
            [limit] = [node for node in nodes if node["Node Type"] == "Limit"]
            [lock_rows] = limit["Plans"]
            assert lock_rows["Node Type"] == "LockRows", case
            [scan] = lock_rows["Plans"]
            assert scan["Node Type"] == "Index Scan" and scan["Index Name"] == "ix_jobs_claim", case


async def test_a_claim_skips_a_job_another_transaction_holds_and_takes_the_next(api: Api) -> None:
    first = await api.submit(priority="high")
    second = await api.submit()
    worker = await api.register()
    async with api.coord.db.write() as conn:
        await conn.execute(select(JOBS.c.id).where(JOBS.c.id == first["id"]).with_for_update())
        # Held by this transaction: the claim neither waits for it nor hands it out.
        tasks = await asyncio.wait_for(api.claim(worker), timeout=30)
        assert [task["job_id"] for task in tasks] == [second["id"]]
    assert [task["job_id"] for task in await api.claim(worker)] == [first["id"]]


async def test_concurrent_claims_on_two_coordinators_lease_each_job_once(api: Api) -> None:
    jobs = 120
    response = await api.http.post(
        f"{API_PREFIX}/jobs/batch", json={"jobs": [{"type": "noop"}] * jobs}, headers=api.auth("client")
    )
    assert response.status_code == 201, response.text
    async with running_api(api.coord.settings, ManualClock()) as other:
        workers = [(api, await api.register()) for _ in range(3)]
        workers += [(other, await other.register()) for _ in range(3)]
        claimed: list[str] = []
        while True:
            rounds = await asyncio.gather(*(side.claim(worker, max_tasks=7) for side, worker in workers))
            batch = [task["job_id"] for tasks in rounds for task in tasks]
            if not batch:
                break
            claimed += batch
    counts = Counter(claimed)
    assert len(counts) == jobs and max(counts.values()) == 1, counts.most_common(3)
    async with api.coord.db.read() as conn:
        attempts = Counter((await conn.execute(select(JOBS.c.attempts))).scalars())
    assert attempts == {1: jobs}
