"""``python -m bench --smoke`` end to end: every installed system gets its rows, the ratios are
numbers, and nothing it started is left running. No timing is asserted."""

from __future__ import annotations

import importlib.util
import json
import math
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bench.harness.checks import find_availability
from bench.harness.processes import alive
from bench.harness.workloads import TASKPOST_PG

REPO_ROOT = Path(__file__).resolve().parents[2]
RATIO = re.compile(r"^(\d+(?:\.\d+)?)x")

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def _table_rows(markdown: str) -> list[list[str]]:
    rows = []
    for line in markdown.splitlines():
        if line.startswith("| ") and not line.startswith("| measure") and not line.startswith("| ---"):
            rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    return rows


@pytest.mark.timeout(420)
def test_smoke_run_covers_every_installed_system(tmp_path: Path) -> None:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not on PATH (Debian: apt-get install redis-server)")
    for module in ("redis", "rq", "celery"):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{module} is not installed")
    out = tmp_path / "table.md"

    finished = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--out", str(out)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=400,
        check=False,
    )

    assert finished.returncode == 0, finished.stderr[-4000:]
    raw = json.loads(out.with_suffix(".json").read_text())
    expected = ["Taskpost SQLite", "RQ SimpleWorker x2", "Celery solo x2", "Celery prefork -c 2"]
    if TASKPOST_PG in raw["systems"]:
        expected.append("Taskpost PostgreSQL")
    else:
        assert TASKPOST_PG not in find_availability().systems or raw["notes"], "PostgreSQL dropped silently"
    rows = _table_rows(out.read_text())
    systems = {row[1] for row in rows}
    for name in expected:
        assert any(system.startswith(name) for system in systems), f"no row for {name}: {sorted(systems)}"
    measures = {row[0] for row in rows}
    assert len(measures) == 4, measures
    taskpost_rows = [row for row in rows if row[1].startswith("Taskpost")]
    assert taskpost_rows
    for row in taskpost_rows:
        for cell in (row[5], row[6]):
            match = RATIO.match(cell)
            assert match, f"not a ratio: {cell!r} in {row}"
            assert math.isfinite(float(match.group(1)))
        assert row[8] in ("met", "not met"), row
    assert raw["left_running"] == []
    assert raw["started_pids"]
    assert not [pid for pid in raw["started_pids"] if alive(pid)]
