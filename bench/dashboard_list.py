"""The dashboard's job list (``GET /dashboard/jobs``) with 100k jobs in the table: server time.

Starts the coordinator app in process on a fresh database (a SQLite file unless
``--database-url`` names another), fills it with ``--jobs`` rows over namespaces, types,
priorities and states (executemany), runs ANALYZE, signs in to the dashboard with the admin key,
then requests the list with each filter ``--runs`` times through httpx's ASGI transport (no
network) and prints the median and the worst time of each in milliseconds: the query plus the
rendering of 50 rows, which is all the server does for the page.

``--postgres`` runs it on a throwaway PostgreSQL cluster (bench/pg_cluster.py).

Usage: python -m bench.dashboard_list [--jobs 100000] [--runs 20] [--database-url URL | --postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import tempfile
import time
from pathlib import Path

import httpx
from sqlalchemy import text

from bench.counts_query import _fill
from taskpost.server.app import create_app
from taskpost.server.coordinator import Coordinator
from taskpost.server.settings import Settings

ADMIN_KEY = "bench-admin-key-at-least-32-characters"


async def _signed_in(client: httpx.AsyncClient) -> None:
    form = await client.get("/dashboard/login")
    token = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert token, form.text
    response = await client.post("/dashboard/login", data={"csrf": token.group(1), "api_key": ADMIN_KEY})
    assert response.status_code == 303, response.text


async def _time(client: httpx.AsyncClient, path: str, runs: int) -> tuple[float, float]:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        response = await client.get(path)
        times.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, (path, response.status_code)
    return statistics.median(times), max(times)


async def main(jobs: int, runs: int, database_url: str | None) -> None:
    with tempfile.TemporaryDirectory() as data_dir:
        settings = Settings(
            data_dir=Path(data_dir), database_url=database_url, admin_key=ADMIN_KEY, _env_file=None
        )
        coord = Coordinator.from_settings(settings)
        app = create_app(settings, coord)
        async with app.router.lifespan_context(app):
            started = time.perf_counter()
            await _fill(coord.db, jobs)
            async with coord.db.write() as conn:
                await conn.execute(text("ANALYZE"))
            print(f"{jobs} jobs inserted in {time.perf_counter() - started:.1f} s ({coord.db.dialect.name})")
            async with coord.db.read() as conn:
                some_id = (await conn.execute(text("SELECT id FROM jobs LIMIT 1"))).scalar_one()
                middle = (await conn.execute(text("SELECT max(seq) / 2 FROM jobs"))).scalar_one()
            transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
            async with httpx.AsyncClient(transport=transport, base_url="http://coordinator") as client:
                await _signed_in(client)
                for label, path in (
                    ("newest 50", "/dashboard/jobs"),
                    ("state=dead", "/dashboard/jobs?state=dead"),
                    ("type=ocr", "/dashboard/jobs?type=ocr"),
                    ("type+state+priority", "/dashboard/jobs?type=ocr&state=queued&priority=high"),
                    ("id prefix (4 chars)", f"/dashboard/jobs?q={some_id[:4]}"),
                    ("cursor mid-table", f"/dashboard/jobs?cursor={middle}"),
                    ("overview (not the list)", "/dashboard"),
                    ("dead letters (10k read)", "/dashboard/dead"),
                ):
                    median, worst = await _time(client, path, runs)
                    print(f"{label:24} median {median:7.1f} ms   max {worst:7.1f} ms")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--postgres", action="store_true", help="on a throwaway PostgreSQL cluster")
    args = parser.parse_args()
    if args.postgres:
        from bench.pg_cluster import throwaway_cluster

        with throwaway_cluster() as cluster:
            asyncio.run(main(args.jobs, args.runs, cluster.create_database()))
    else:
        asyncio.run(main(args.jobs, args.runs, args.database_url))
