"""Every ``taskpost`` command that talks to a coordinator, run as the installed console script
against a live one (tests/e2e's Cluster), with ``TASKPOST_API_KEY`` in the environment and its
``--json`` output parsed. tests/test_cli_help.py checks that COMMANDS names every such command."""

from __future__ import annotations

import json
import os
import pty
import select
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import ADMIN_KEY, Cluster, wait_until

pytestmark = [pytest.mark.e2e]

REPO = Path(__file__).resolve().parents[2]

COMMANDS = frozenset(
    {
        "info",
        "types",
        "purge",
        "submit",
        "jobs submit",
        "jobs show",
        "jobs list",
        "jobs watch",
        "jobs cancel",
        "jobs requeue",
        "jobs empty",
        "jobs outputs",
        "workers list",
        "workers drain",
        "workers undrain",
        "keys create",
        "keys list",
        "keys revoke",
        "keys rotate",
    }
)
"""The commands the tests below run."""


def _program() -> list[str]:
    """The ``taskpost`` console script beside this Python (``python -m taskpost.cli`` without one)."""
    script = shutil.which("taskpost", path=str(Path(sys.executable).parent))
    return [script] if script else [sys.executable, "-m", "taskpost.cli"]


def _env(cluster: Cluster, key: str) -> dict[str, str]:
    path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    return {
        **cluster.coordinator.env,
        "PYTHONPATH": path,
        "TASKPOST_SERVER_URL": cluster.url,
        "TASKPOST_API_KEY": key,
    }


def run(
    cluster: Cluster, *args: str, key: str = ADMIN_KEY, answer: str | None = None, status: int = 0
) -> subprocess.CompletedProcess[str]:
    """``taskpost *args``; asserts its exit status."""
    done = subprocess.run(
        [*_program(), *args], env=_env(cluster, key), input=answer, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == status, (
        f"taskpost {' '.join(args)}: {done.returncode}\n{done.stdout}\n{done.stderr}"
    )
    return done


def run_json(cluster: Cluster, *args: str, key: str = ADMIN_KEY, status: int = 0) -> Any:
    return json.loads(run(cluster, *args, "--json", key=key, status=status).stdout)


def in_terminal(cluster: Cluster, *args: str, until: str, interrupt: bool = False) -> tuple[int, str]:
    """``taskpost *args`` with a terminal (a pty) for its output, read until ``until`` shows; then
    Ctrl-C (``interrupt``) or its end. Its exit status and what it printed."""
    leader, follower = pty.openpty()
    env = {**_env(cluster, ADMIN_KEY), "COLUMNS": "160", "TERM": "xterm-256color"}
    with subprocess.Popen(
        [*_program(), *args], env=env, stdin=subprocess.DEVNULL, stdout=follower, stderr=follower
    ) as process:
        os.close(follower)
        output = b""
        deadline = time.monotonic() + 60
        try:
            while time.monotonic() < deadline:
                if interrupt and until.encode() in output:
                    process.send_signal(signal.SIGINT)
                    interrupt = False
                if select.select([leader], [], [], 0.2)[0]:
                    try:
                        chunk = os.read(leader, 65536)
                    except OSError:  # the pty closed: the program ended
                        break
                    if not chunk:
                        break
                    output += chunk
            status = process.wait(timeout=20)
        finally:
            os.close(leader)
            if process.poll() is None:
                process.kill()
    text = output.decode(errors="replace")
    assert until in text, text
    return status, text


def test_jobs_from_submit_to_watch_list_outputs_cancel_and_requeue(cluster: Cluster, tmp_path: Path) -> None:
    cluster.start_agent("--task-type", "noop")
    cluster.wait_agents(1)
    slow = run_json(cluster, "jobs", "submit", "noop", "-p", "sleep_s=5", "-p", 'outputs={"a.txt": "hi"}')
    lines = [
        json.loads(line) for line in run(cluster, "jobs", "watch", slow["id"], "--json").stdout.splitlines()
    ]
    assert lines[-1]["state"] == "completed" and lines[-1]["id"] == slow["id"]
    assert "processing" in {line["state"] for line in lines}
    assert any(0 < (line["progress"] or 0) < 1 for line in lines), "no progress between 0 and 1 was shown"
    plain = run(cluster, "jobs", "watch", slow["id"]).stdout
    assert f"job {slow['id']} completed" in plain
    # Partial output (a transcript growing) is printed as it arrives, in order, between the states.
    growing = run_json(
        cluster, "jobs", "submit", "noop", "-p", "sleep_s=2", "-p", 'partials=["one", "two", "three"]'
    )
    watched = run(cluster, "jobs", "watch", growing["id"]).stdout.splitlines()
    texts = [line for line in watched if line in {"one", "two", "three"}]
    assert texts == ["one", "two", "three"], watched
    assert watched.index("one") < next(i for i, line in enumerate(watched) if "completed" in line)
    partial_lines = [
        json.loads(line)
        for line in run(cluster, "jobs", "watch", growing["id"], "--json").stdout.splitlines()
        if '"partial"' in line
    ]
    assert partial_lines == [], "a finished job's watch starts from its state: no replayed partials"
    live = run_json(cluster, "jobs", "submit", "noop", "-p", "sleep_s=4")
    status, screen = in_terminal(cluster, "jobs", "watch", live["id"], until=f"job {live['id']} completed")
    assert status == 0 and "━" in screen and "\x1b[" in screen  # a bar, in colour

    shown = run_json(cluster, "jobs", "show", slow["id"])
    assert shown["state"] == "completed" and shown["outputs"][0]["name"] == "a.txt"
    assert "completed" in run(cluster, "jobs", "show", slow["id"]).stdout
    [listed] = run_json(cluster, "jobs", "outputs", slow["id"])
    assert listed["name"] == "a.txt" and listed["size"] == 2
    saved = run_json(cluster, "jobs", "outputs", slow["id"], "--dir", str(tmp_path / "out"))
    assert [Path(p).name for p in saved] == ["a.txt"] and (tmp_path / "out" / "a.txt").read_text() == "hi"

    alias = json.loads(run(cluster, "submit", "noop", "-p", "n=2", "--wait").stdout)
    assert alias["state"] == "completed"
    first = run_json(cluster, "jobs", "list", "--state", "completed", "--limit", "1")
    assert [j["id"] for j in first["jobs"]] == [alias["id"]] and first["next_cursor"]
    second = run_json(
        cluster, "jobs", "list", "--state", "completed", "--limit", "1", "--cursor", first["next_cursor"]
    )
    assert [j["id"] for j in second["jobs"]] == [live["id"]]
    every = run_json(cluster, "jobs", "list", "--state", "completed", "--limit", "1", "--all-pages")
    assert [j["id"] for j in every["jobs"]] == [alias["id"], live["id"], growing["id"], slow["id"]]
    assert every["next_cursor"] is None
    assert alias["id"] in run(cluster, "jobs", "list").stdout

    later = run_json(cluster, "jobs", "submit", "noop", "--delay", "30m")
    assert run_json(cluster, "jobs", "cancel", later["id"])["state"] == "cancelled"
    assert run_json(cluster, "jobs", "requeue", later["id"])["state"] in {"queued", "processing", "completed"}

    dead = run_json(cluster, "jobs", "submit", "noop", "-p", "fail=boom", "-p", "fail_retryable=false")
    watched = run(cluster, "jobs", "watch", dead["id"], "--json", status=1).stdout.splitlines()
    assert json.loads(watched[-1])["state"] == "dead"


def test_bulk_requeue_and_empty_ask_first_and_count(cluster: Cluster) -> None:
    cluster.start_agent("--task-type", "noop", name="bulk-agent")
    cluster.wait_agents(1)
    dead = [cluster.submit(params={"fail": "x", "fail_retryable": False})["id"] for _ in range(2)]
    for job_id in dead:
        cluster.wait_job(job_id, {"dead"})
    declined = run(cluster, "jobs", "requeue", "--dead", answer="n\n", status=1)
    assert "Requeue 2 jobs (dead)?" in declined.stderr and "aborted" in declined.stderr
    assert {cluster.job(j)["state"] for j in dead} == {"dead"}
    requeued = run_json(cluster, "jobs", "requeue", "--dead", "--type", "noop", "--yes")
    assert requeued == {"dry_run": False, "count": 2, "more": False}
    for job_id in dead:
        cluster.wait_job(job_id, {"dead"})  # they fail again
    text = run(cluster, "jobs", "requeue", "--all", answer="y\n").stdout
    assert "requeued 2 jobs (failed or dead or cancelled)" in text
    for job_id in dead:
        cluster.wait_job(job_id, {"dead"})
    both = run(cluster, "jobs", "requeue", dead[0], "--dead", status=2)
    assert "give a job id, or --dead, --failed or --all" in both.stderr

    drained = run_json(cluster, "workers", "drain", "bulk-agent")
    assert drained["draining"] is True
    queued = [cluster.submit(params={"n": n})["id"] for n in range(3)]
    assert run(cluster, "jobs", "empty", "--type", "noop", answer="n\n", status=1).stderr.count(
        "Cancel 3 jobs"
    )
    emptied = run_json(cluster, "jobs", "empty", "--type", "noop", "--yes")
    assert emptied["count"] == 3
    assert {cluster.job(j)["state"] for j in queued} == {"cancelled"}
    nothing = run(cluster, "jobs", "empty", "--type", "noop").stdout
    assert "cancelled 0 jobs queued noop" in nothing


def test_workers_listed_drained_and_undrained_by_name(cluster: Cluster) -> None:
    cluster.start_agent("--task-type", "noop", name="w-agent", env={"TASKPOST_LABELS": "eu"})
    cluster.wait_agents(1)
    [worker] = run_json(cluster, "workers", "list")
    assert worker["name"] == "w-agent" and worker["labels"] == ["eu"] and worker["draining"] is False
    assert run_json(cluster, "workers", "drain", "w-agent")["draining"] is True
    table = run(cluster, "workers", "list").stdout
    assert "w-agent" in table and "draining" in table and "last heartbeat" in table
    assert run_json(cluster, "workers", "undrain", worker["id"])["draining"] is False
    missing = run(cluster, "workers", "drain", "nobody", status=1)
    assert "no agent has the id or name 'nobody'" in missing.stderr
    assert run_json(cluster, "workers", "list", "--all")[0]["id"] == worker["id"]


def test_keys_created_with_limits_listed_rotated_and_revoked(cluster: Cluster) -> None:
    made = run_json(
        cluster, "keys", "create", "--role", "worker", "--task-type", "noop", "--expires-in", "90d"
    )
    info = made["info"]
    assert info["task_types"] == ["noop"] and info["expires_at"] is not None
    client_key = run(cluster, "keys", "create", "--role", "client", "--name", "rotating").stdout.strip()
    old = cluster.client(client_key)
    assert old.get("/jobs").status_code == 200
    listed = {k["id"]: k for k in run_json(cluster, "keys", "list")}
    assert listed[info["id"]]["task_types"] == ["noop"]
    rotating = next(k for k in listed.values() if k["name"] == "rotating")
    table = run(cluster, "keys", "list").stdout
    assert "expires" in table.splitlines()[0] and "in 89d" in table and "noop" in table

    rotated = run_json(cluster, "keys", "rotate", rotating["prefix"], "--grace", "1h")
    assert rotated["info"]["id"] == rotating["id"] and rotated["key"] != client_key
    assert rotated["info"]["previous_expires_at"] is not None
    assert cluster.client(rotated["key"]).get("/jobs").status_code == 200
    assert old.get("/jobs").status_code == 200  # within its grace
    again = run(cluster, "keys", "rotate", rotating["id"], "--grace", "0s")
    assert again.stdout.strip().startswith("tp_") and "the old secret stopped" in again.stderr
    assert cluster.client(rotated["key"]).get("/jobs").status_code == 401
    bad = run(cluster, "keys", "create", "--role", "worker", "--expires-in", "90 days", status=2)
    assert "invalid duration" in bad.stderr

    revoked = run_json(cluster, "keys", "revoke", info["id"])
    assert revoked["revoked_at"] is not None


def test_info_types_and_purge(cluster: Cluster) -> None:
    cluster.start_agent("--task-type", "noop", name="info-agent")
    cluster.wait_agents(1)
    client_key = cluster.http.post("/keys", json={"role": "client", "namespaces": ["other"]}).json()["key"]
    done = cluster.submit(priority="high")
    failing = cluster.submit(params={"fail": "later", "retry_delay_s": 600})
    cluster.wait_job(done["id"], {"completed"})
    cluster.wait_job(failing["id"], {"failed"})
    stats = run_json(cluster, "info")
    assert {"type": "noop", "priority": "high", "state": "completed", "count": 1} in stats["counts"]
    assert [w["name"] for w in stats["workers"]] == ["info-agent"]
    failures = run_json(cluster, "info", "--only-failures")
    assert [(c["state"], c["count"]) for c in failures["counts"]] == [("failed", 1)]
    text = run(cluster, "info").stdout
    assert "retry scheduled" in text and "info-agent" in text
    assert run_json(cluster, "info", key=client_key)["totals"].get("completed", 0) == 0  # another namespace

    command = [*_program(), "info", "--watch", "0.2", "--json"]
    with subprocess.Popen(
        command, env=_env(cluster, ADMIN_KEY), stdout=subprocess.PIPE, text=True
    ) as watching:
        try:
            assert watching.stdout is not None
            snapshots = [json.loads(watching.stdout.readline()) for _ in range(2)]
            assert all(s["totals"]["completed"] == 1 for s in snapshots)
            watching.send_signal(signal.SIGINT)
            assert watching.wait(timeout=20) == 0
        finally:
            if watching.poll() is None:
                watching.kill()

    status, screen = in_terminal(cluster, "info", "--watch", "0.3", until="info-agent", interrupt=True)
    assert status == 0 and "retry scheduled" in screen and "┃" in screen  # a rich table

    types = run_json(cluster, "types")
    assert next(t for t in types["types"] if t["name"] == "noop")["online"] is True
    preview = run_json(cluster, "purge", "--state", "completed", "--older-than", "0s", "--dry-run")
    assert preview["jobs"] == {"completed": 1} and preview["dry_run"] is True
    purged = run_json(cluster, "purge", "--state", "completed", "--older-than", "0s", "--yes")
    assert purged["jobs"] == {"completed": 1}
    wait_until(lambda: cluster.http.get(f"/jobs/{done['id']}").status_code == 404, 5, "the purged job gone")


def test_every_command_says_how_to_give_a_key(cluster: Cluster) -> None:
    refused = run(cluster, "workers", "list", key="", status=1)
    assert "no API key for" in refused.stderr
    bad = run(cluster, "jobs", "show", "nope", key="not-a-key-at-all-but-long-enough", status=1)
    assert "HTTP 401" in bad.stderr
    assert httpx.get(cluster.url + "/health").status_code == 200
