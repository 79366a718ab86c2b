"""One import package: installed, everything lives under ``taskpost``; a checkout runs the agent
without installing Taskpost itself."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from taskpost.agent import handlers

REPO_ROOT = Path(__file__).resolve().parent.parent
MAPPED = {"taskpost.server": "server", "taskpost.agent": "agent", "taskpost.protocol": "protocol"}


def _packages_in_tree() -> set[str]:
    found = {"taskpost"}
    for init in (REPO_ROOT / "taskpost").glob("*/__init__.py"):
        if not init.parent.is_symlink():
            found.add(f"taskpost.{init.parent.name}")
    for package, folder in MAPPED.items():
        for init in (REPO_ROOT / folder).rglob("__init__.py"):
            relative = init.parent.relative_to(REPO_ROOT / folder)
            found.add(".".join([package, *relative.parts]))
    return found


def test_pyproject_names_every_package_in_the_tree() -> None:
    config = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert set(config["packages"]) == _packages_in_tree()
    assert {name: path for name, path in config["package-dir"].items() if name != "taskpost"} == MAPPED


@pytest.mark.slow
def test_the_wheel_holds_one_top_level_package(tmp_path: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            tmp_path,
            REPO_ROOT,
        ],
        check=True,
        timeout=300,
    )
    [wheel] = tmp_path.glob("taskpost-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top_level = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert top_level == {"taskpost"}
    for module in ("server/app.py", "agent/cli.py", "protocol/__init__.py", "client/sync.py", "py.typed"):
        assert f"taskpost/{module}" in names
    assert "taskpost/server/db/migrations/script.py.mako" in names


def test_builtin_handlers_load_without_entry_point_metadata(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(handlers, "entry_points", lambda group: [])
    assert "noop" in handlers.discover_handlers()


def _checkout_without_links(destination: Path) -> Path:
    """A copy of the checkout as Git on Windows leaves it: taskpost/{server,agent,protocol} absent."""
    ignore = shutil.ignore_patterns("__pycache__")
    for folder in ("server", "agent", "protocol", "scripts"):
        shutil.copytree(REPO_ROOT / folder, destination / folder, ignore=ignore)
    shutil.copytree(REPO_ROOT / "taskpost", destination / "taskpost", ignore=ignore, symlinks=True)
    for folder in MAPPED.values():
        (destination / "taskpost" / folder).unlink()
    return destination


@pytest.mark.parametrize("links", [True, False], ids=["with-links", "without-links"])
def test_start_script_runs_from_a_checkout(tmp_path: Path, links: bool) -> None:
    checkout = REPO_ROOT if links else _checkout_without_links(tmp_path / "checkout")
    script = str(checkout / "scripts" / "start_http_remote_worker.py")
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            f"import runpy, sys; sys.argv[1:] = ['--help']; runpy.run_path({script!r}, run_name='__main__')",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert "--server-url" in done.stdout


def test_start_script_names_what_to_install_when_dependencies_are_missing(tmp_path: Path) -> None:
    bare = tmp_path / "bare"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", bare], check=True, timeout=120)
    python = bare / ("Scripts" if sys.platform == "win32" else "bin") / "python"
    done = subprocess.run(
        [python, REPO_ROOT / "scripts" / "start_http_remote_worker.py", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    assert "pip install -e" in done.stderr
    assert "Traceback" not in done.stderr
