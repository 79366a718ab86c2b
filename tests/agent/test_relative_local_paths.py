"""A relative ``local_path`` is looked up under each of the agent's files roots in turn."""

from __future__ import annotations

from pathlib import Path

import pytest

from taskpost.agent.handlers.base import HandlerError, TaskContext, find_local_file, is_relative_local_path


@pytest.fixture
def roots(tmp_path: Path) -> tuple[Path, Path]:
    first, second = tmp_path / "first", tmp_path / "second"
    (first / "samples").mkdir(parents=True)
    (second / "samples").mkdir(parents=True)
    (second / "samples" / "sample.pdf").write_bytes(b"%PDF")
    (tmp_path / "secret.txt").write_text("no")
    (first / "samples" / "escape.pdf").symlink_to(tmp_path / "secret.txt")
    return first.resolve(), second.resolve()


def test_the_first_root_holding_the_file_wins(roots: tuple[Path, Path]) -> None:
    assert find_local_file("samples/sample.pdf", roots) == roots[1] / "samples" / "sample.pdf"
    (roots[0] / "samples" / "sample.pdf").write_bytes(b"%PDF")
    assert find_local_file("samples/sample.pdf", roots) == roots[0] / "samples" / "sample.pdf"


@pytest.mark.parametrize("path", ["samples/missing.pdf", "samples/escape.pdf", "../secret.txt", "samples"])
def test_nothing_outside_a_root_or_missing_is_found(roots: tuple[Path, Path], path: str) -> None:
    assert find_local_file(path, roots) is None


def test_which_paths_are_relative() -> None:
    assert is_relative_local_path("samples/a.pdf")
    assert not is_relative_local_path("/srv/a.pdf")
    assert not is_relative_local_path("~/a.pdf")


def test_a_handler_reads_a_relative_path_or_fails_without_retry(
    tmp_path: Path, roots: tuple[Path, Path]
) -> None:
    ctx = TaskContext(
        job_id="j", task_type="t", attempt=1, params={}, inputs={}, work_dir=tmp_path, files_roots=roots
    )
    assert ctx.local_file("samples/sample.pdf") == roots[1] / "samples" / "sample.pdf"
    with pytest.raises(HandlerError, match="not a file under any files root") as caught:
        ctx.local_file("samples/missing.pdf")
    assert caught.value.retryable is False
