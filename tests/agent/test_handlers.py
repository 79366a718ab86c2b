"""Handler discovery, the noop handler and TaskContext."""

from __future__ import annotations

import threading
from collections.abc import Callable
from importlib.metadata import EntryPoint
from pathlib import Path
from typing import Any

import pytest

from taskpost.agent.errors import ConfigError
from taskpost.agent.handlers import (
    ENTRY_POINT_GROUP,
    CancelReason,
    Handler,
    HandlerError,
    MissingExtra,
    TaskContext,
    discover_handlers,
)
from taskpost.agent.handlers.noop import NoopHandler
from taskpost.agent.settings import AgentSettings


@pytest.fixture
def make_ctx(tmp_path: Path) -> Callable[..., TaskContext]:
    def make(params: dict[str, Any] | None = None, inputs: dict[str, bytes] | None = None) -> TaskContext:
        out = tmp_path / "out"
        out.mkdir(exist_ok=True)
        paths: dict[str, Path] = {}
        for name, data in (inputs or {}).items():
            paths[name] = tmp_path / name
            paths[name].write_bytes(data)
        return TaskContext(
            job_id="j1", task_type="noop", attempt=1, params=params or {}, inputs=paths, work_dir=out.parent
        )

    return make


def ep(name: str, value: str) -> EntryPoint:
    return EntryPoint(name=name, value=value, group=ENTRY_POINT_GROUP)


def test_discovery_finds_the_installed_noop_handler() -> None:
    handlers = discover_handlers()
    assert isinstance(handlers["noop"], NoopHandler)
    assert isinstance(handlers["noop"], Handler)


def test_discovery_skips_handlers_that_fail_to_import(caplog: pytest.LogCaptureFixture) -> None:
    points = [
        ep("noop", "taskpost.agent.handlers.noop:NoopHandler"),
        ep("ocr", "taskpost_missing_pkg.ocr:Ocr"),
    ]
    handlers = discover_handlers(eps=points)
    assert list(handlers) == ["noop"]
    assert "handler 'ocr' skipped" in caplog.text


def test_discovery_of_wanted_types() -> None:
    points = [
        ep("noop", "taskpost.agent.handlers.noop:NoopHandler"),
        ep("ocr", "taskpost_missing_pkg.ocr:Ocr"),
    ]
    assert list(discover_handlers(["noop"], eps=points)) == ["noop"]
    with pytest.raises(ConfigError, match="ocr"):
        discover_handlers(["noop", "ocr"], eps=points)


def test_noop_echoes_params(make_ctx: Callable[..., TaskContext]) -> None:
    ctx = make_ctx({"a": 1})
    result = NoopHandler().run(ctx)
    assert result["params"] == {"a": 1}
    assert ctx.progress_snapshot() == (1.0, "done")


def test_noop_runs_after_setup_with_the_agents_settings(make_ctx: Callable[..., TaskContext]) -> None:
    handler = NoopHandler()
    handler.setup(AgentSettings(server_url="http://c", api_key="k", _env_file=None))
    assert handler.run(make_ctx({"after": "setup"}))["params"] == {"after": "setup"}


def test_noop_fail(make_ctx: Callable[..., TaskContext]) -> None:
    with pytest.raises(HandlerError) as info:
        NoopHandler().run(make_ctx({"fail": "boom", "fail_retryable": False, "retry_delay_s": 3}))
    assert info.value.message == "boom"
    assert info.value.retryable is False
    assert info.value.retry_delay_s == 3.0
    with pytest.raises(HandlerError) as info:
        NoopHandler().run(make_ctx({"fail": "again"}))
    assert info.value.retryable is True and info.value.retry_delay_s is None


def test_noop_outputs_and_echo_inputs(make_ctx: Callable[..., TaskContext]) -> None:
    ctx = make_ctx({"outputs": {"a.txt": "hello"}, "echo_inputs": True}, inputs={"in.bin": b"abc"})
    result = NoopHandler().run(ctx)
    assert (ctx.output_dir / "a.txt").read_text() == "hello"
    assert result["outputs"] == ["a.txt"]
    assert result["inputs"]["in.bin"] == {
        "sha256": "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
        "size": 3,
    }


def test_noop_refuses_output_paths(make_ctx: Callable[..., TaskContext]) -> None:
    with pytest.raises(HandlerError, match="bad output name"):
        NoopHandler().run(make_ctx({"outputs": {"../x": "no"}}))


def test_noop_sleep_stops_on_cancellation(make_ctx: Callable[..., TaskContext]) -> None:
    ctx = make_ctx({"sleep_s": 60})
    results: list[dict[str, Any]] = []
    worker = threading.Thread(target=lambda: results.append(NoopHandler().run(ctx)))
    worker.start()
    ctx.cancel(CancelReason.CANCEL_REQUESTED)
    worker.join(timeout=10)
    assert not worker.is_alive()
    assert results[0]["cancelled"] is True


def test_noop_sleep_reports_progress_and_time_left(make_ctx: Callable[..., TaskContext]) -> None:
    sleep_s = 0.3
    ctx = make_ctx({"sleep_s": sleep_s})
    reports: list[tuple[float | None, str | None]] = []
    record = ctx.heartbeat

    def heartbeat(progress: float | None = None, message: str | None = None) -> None:
        reports.append((progress, message))
        record(progress, message)

    ctx.heartbeat = heartbeat  # type: ignore[method-assign]
    result = NoopHandler().run(ctx)
    assert "cancelled" not in result
    sleeping = [(p, m) for p, m in reports if m and m.startswith("sleeping, ")]
    assert sleeping, reports
    progress = [p for p, _ in sleeping]
    assert progress == sorted(progress) and all(p is not None and 0 <= p < 1 for p in progress)
    for value, message in sleeping:
        assert value is not None and message is not None
        left = float(message.removeprefix("sleeping, ").removesuffix("s left"))
        assert left == pytest.approx(sleep_s * (1 - value), abs=0.051), (value, message)
    assert reports[-1] == (1.0, "done") and ctx.progress_snapshot() == (1.0, "done")


def test_context_cancellation_first_reason_wins(make_ctx: Callable[..., TaskContext]) -> None:
    ctx = make_ctx()
    assert not ctx.is_cancelled() and ctx.cancel_reason is None
    assert ctx.cancel(CancelReason.TIMEOUT)
    assert not ctx.cancel(CancelReason.LEASE_LOST)
    assert ctx.is_cancelled() and ctx.cancel_reason is CancelReason.TIMEOUT
    assert ctx.wait_cancelled(0)


def test_context_heartbeat_clamps_and_keeps_last_values(make_ctx: Callable[..., TaskContext]) -> None:
    ctx = make_ctx()
    ctx.heartbeat(1.7, "x" * 2000)
    assert ctx.progress_snapshot() == (1.0, "x" * 1000)
    ctx.heartbeat(-1)
    assert ctx.progress_snapshot() == (0.0, "x" * 1000)
    ctx.heartbeat(message="half")
    assert ctx.progress_snapshot() == (0.0, "half")


def test_missing_extra_is_not_retryable() -> None:
    error = MissingExtra("media", package="faster-whisper")
    assert str(error) == "install taskpost[media] (faster-whisper is not installed)"
    assert error.retryable is False and error.kind == "missing_extra"
