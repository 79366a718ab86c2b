"""local_path jobs: only files inside the agent's roots, symlinks resolved first."""

from __future__ import annotations

from pathlib import Path

import pytest

from taskpost.agent.handlers.base import HandlerError, TaskContext
from taskpost.agent.media.sources import media_input
from taskpost.agent.settings import AgentSettings


def context(
    tmp_path: Path, params: dict[str, object], roots: tuple[Path, ...], inputs: dict[str, Path] | None = None
) -> TaskContext:
    return TaskContext(
        job_id="j",
        task_type="t",
        attempt=1,
        params=params,
        inputs=inputs or {},
        work_dir=tmp_path / "w",
        files_roots=roots,
    )


@pytest.fixture
def root(tmp_path: Path) -> Path:
    media = tmp_path / "media"
    media.mkdir()
    (media / "talk.wav").write_bytes(b"RIFF")
    (tmp_path / "secret.txt").write_text("no")
    (media / "escape.wav").symlink_to(tmp_path / "secret.txt")
    return media.resolve()


def test_a_file_inside_a_root_is_returned(tmp_path: Path, root: Path) -> None:
    ctx = context(tmp_path, {"local_path": str(root / "talk.wav")}, (root,))
    assert media_input(ctx) == root / "talk.wav"


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("{root}/escape.wav", "outside the allowed roots"),
        ("{root}/../secret.txt", "outside the allowed roots"),
        ("{root}/missing.wav", "not an existing file"),
        ("missing.wav", "not a file under any files root"),
    ],
)
def test_refusals_are_not_retryable(tmp_path: Path, root: Path, path: str, message: str) -> None:
    ctx = context(tmp_path, {"local_path": path.format(root=root)}, (root,))
    with pytest.raises(HandlerError, match=message) as caught:
        media_input(ctx)
    assert caught.value.retryable is False and caught.value.kind == "local_path"


def test_an_agent_without_roots_refuses_local_paths(tmp_path: Path, root: Path) -> None:
    with pytest.raises(HandlerError, match="--files-root"):
        media_input(context(tmp_path, {"local_path": str(root / "talk.wav")}, ()))


def test_uploaded_inputs(tmp_path: Path) -> None:
    one, two = tmp_path / "a.wav", tmp_path / "b.wav"
    assert media_input(context(tmp_path, {}, (), {"a.wav": one})) == one
    assert media_input(context(tmp_path, {"input": "b.wav"}, (), {"a.wav": one, "b.wav": two})) == two
    with pytest.raises(HandlerError, match="name the one to process"):
        media_input(context(tmp_path, {}, (), {"a.wav": one, "b.wav": two}))
    with pytest.raises(HandlerError, match="no input file"):
        media_input(context(tmp_path, {}, ()))


def test_roots_become_labels(tmp_path: Path, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASKPOST_FILES_ROOTS", f"{root},{root}")
    settings = AgentSettings(server_url="http://x", api_key="k", labels=["eu"], _env_file=None)
    assert settings.files_roots == [str(root)]
    assert settings.advertised_labels == ["eu", f"files-root:{root}"]
    monkeypatch.setenv("TASKPOST_FILES_ROOTS", str(tmp_path / "nope"))
    with pytest.raises(ValueError, match="not a directory"):
        AgentSettings(server_url="http://x", api_key="k", _env_file=None)
