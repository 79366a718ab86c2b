"""The agent's footprint on disk: a private work root, 0700 folders, 0600 files, no token in names."""

from __future__ import annotations

import asyncio
import os
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from taskpost.agent.backoff import Backoff
from taskpost.agent.client import CoordinatorClient
from taskpost.agent.errors import ConfigError
from taskpost.agent.handlers import TaskContext
from taskpost.agent.handlers.noop import NoopHandler
from taskpost.agent.outbox import Outbox
from taskpost.agent.runner import run_agent
from taskpost.agent.settings import AgentSettings
from taskpost.agent.shutdown import Shutdown
from taskpost.agent.state import AgentState, RunningTask
from taskpost.agent.task_runner import TaskRunner
from taskpost.agent.workdir import default_work_dir, prepare_work_dir
from taskpost.launch import child_env, free_port
from taskpost.protocol import CompletionAck, Outcome
from tests.agent.live import LiveCoordinator

pytestmark = pytest.mark.anyio


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


@pytest.fixture(autouse=True)
def _usual_umask() -> Iterator[None]:
    """The common umask 022, under which files and folders are readable by all unless made private."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def test_the_default_is_in_the_users_cache_never_in_memory_or_tmp(tmp_path: Path) -> None:
    runtime = tmp_path / "run-user"
    runtime.mkdir()
    cache = tmp_path / "cache"
    assert default_work_dir({"XDG_CACHE_HOME": str(cache)}) == cache / "taskpost" / "agent"
    with_runtime = {"XDG_RUNTIME_DIR": str(runtime), "XDG_CACHE_HOME": str(cache)}
    assert default_work_dir(with_runtime) == cache / "taskpost" / "agent"
    assert default_work_dir({}) == Path.home() / ".cache" / "taskpost" / "agent"
    assert not str(default_work_dir()).startswith("/tmp/taskpost")


def test_a_created_work_dir_is_0700_and_its_parents_too(tmp_path: Path) -> None:
    root = prepare_work_dir(tmp_path / "a" / "b")
    assert root == tmp_path / "a" / "b"
    assert mode(root) == 0o700 and mode(tmp_path / "a") == 0o700


async def test_the_default_work_dir_is_created_0700_in_the_cache_dir(
    live: LiveCoordinator,
    client: CoordinatorClient,
    make_settings: Callable[..., AgentSettings],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    runtime = tmp_path / "cache-1000"
    runtime.mkdir(mode=0o700)
    monkeypatch.setenv("XDG_CACHE_HOME", str(runtime))
    job = await live.submit(inputs=[await live.upload("in.txt", b"data")], params={"echo_inputs": True})
    shutdown = Shutdown()
    settings = make_settings(work_dir=None, task_types=["noop"])
    agent = asyncio.ensure_future(
        run_agent(settings, client=client, shutdown=shutdown, install_signals=False)
    )
    try:
        done = await live.wait_state(job["id"], "completed")
    finally:
        shutdown.request()
        assert await agent == 0
    assert done["result"]["inputs"]["in.txt"]["size"] == 4
    root = runtime / "taskpost" / "agent"
    assert root.is_dir() and mode(root) == 0o700
    assert list(root.iterdir()) == [], "the attempt's folder is removed when it ends"


class Inspect:
    """Reports what the attempt's folder and files look like while it runs."""

    task_type = "noop"

    def setup(self, settings: object) -> None: ...

    def run(self, ctx: TaskContext) -> dict[str, Any]:
        [path] = ctx.inputs.values()
        return {
            "folder": ctx.work_dir.name,
            "folder_mode": mode(ctx.work_dir),
            "inputs_mode": mode(path.parent),
            "input_mode": mode(path),
            "root_mode": mode(ctx.work_dir.parent),
        }


async def test_inputs_are_0600_in_0700_folders_named_without_the_lease_token(
    live: LiveCoordinator, client: CoordinatorClient, tmp_path: Path
) -> None:
    _, claim = await live.claim(client, inputs=[await live.upload("in.dat", b"secret input")])

    async def unused(completions: Any) -> list[CompletionAck]:
        raise AssertionError("not flushed here")

    state, outbox = AgentState(), Outbox(unused, Backoff(0.01))
    runner = TaskRunner(client, state, outbox, {"noop": Inspect()}, tmp_path / "work")
    task = RunningTask.from_claim(claim, received=time.monotonic(), lease_s=30)
    state.running[claim.job_id] = task
    await runner.run(task)
    [completion] = outbox.pending()
    assert completion.outcome is Outcome.SUCCEEDED, completion.error_message
    seen = completion.result
    assert seen["input_mode"] == 0o600
    assert seen["inputs_mode"] == seen["folder_mode"] == seen["root_mode"] == 0o700
    folder = seen["folder"]
    assert claim.lease_token[:8] not in folder and claim.lease_token[-8:] not in folder
    assert folder.startswith(f"{claim.job_id}-attempt{claim.attempt}-")


def test_the_noop_handlers_outputs_are_0600_in_a_0700_folder(tmp_path: Path) -> None:
    ctx = TaskContext(
        job_id="j",
        task_type="noop",
        attempt=1,
        params={"outputs": {"a.txt": "x"}},
        inputs={},
        work_dir=tmp_path / "w",
    )
    NoopHandler().run(ctx)
    assert mode(ctx.work_dir) == mode(ctx.output_dir) == 0o700
    assert mode(ctx.output_dir / "a.txt") == 0o600


def unsafe_dirs(tmp_path: Path) -> dict[str, Path]:
    target = tmp_path / "elsewhere"
    target.mkdir()
    link = tmp_path / "link"
    link.symlink_to(target)
    open_to_all = tmp_path / "open"
    open_to_all.mkdir()
    open_to_all.chmod(0o777)
    open_to_group = tmp_path / "group"
    open_to_group.mkdir()
    open_to_group.chmod(0o770)
    if os.geteuid() == 0:
        foreign = tmp_path / "foreign"
        foreign.mkdir(mode=0o700)
        os.chown(foreign, 65534, 65534)
    else:
        foreign = Path("/")  # root's
    return {
        "symlink": link,
        "world-writable": open_to_all,
        "group-writable": open_to_group,
        "foreign": foreign,
    }


@pytest.mark.parametrize("kind", ["symlink", "world-writable", "group-writable", "foreign"])
def test_an_unsafe_work_dir_stops_the_agent_process_with_exit_2(tmp_path: Path, kind: str) -> None:
    work_dir = unsafe_dirs(tmp_path)[kind]
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "taskpost.agent",
            "--server-url",
            f"http://127.0.0.1:{free_port()}",  # never reached: the agent stops before registering
            "--api-key",
            "tp_w_key",
            "--task-type",
            "noop",
            "--health-port",
            "0",
            "--work-dir",
            str(work_dir),
            "--log-format",
            "text",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env=child_env({}),
    )
    output = done.stdout + done.stderr
    assert done.returncode == 2, output
    assert "Traceback" not in output
    [line] = [line for line in output.splitlines() if "CRITICAL" in line]
    assert f"work dir {work_dir}" in line and "TASKPOST_WORK_DIR / --work-dir" in line
    if kind == "symlink":
        assert list((tmp_path / "elsewhere").iterdir()) == [], "nothing was written through the link"


def test_a_work_dir_that_is_a_file_is_refused(tmp_path: Path) -> None:
    afile = tmp_path / "file"
    afile.write_text("x")
    with pytest.raises(ConfigError, match="is not a directory"):
        prepare_work_dir(afile)
