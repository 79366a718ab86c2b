"""The handler plugin contract: ``Handler``, the ``TaskContext`` it gets, and ``HandlerError``.

A handler is a class registered under the entry-point group ``taskpost.handlers``. The agent
instantiates it once, calls ``setup(settings)`` once (in a thread) before the first task, then
``run(ctx)`` for every task of its ``task_type``: in a thread when ``run`` is a plain function,
on the event loop when it is ``async def``. Whatever ``run`` returns (JSON-serialisable) is the
job's result; files written to ``ctx.output_dir`` become the job's outputs.

A handler may also declare ``params_model`` (a pydantic model of its ``params``) and ``version``
(a string; taskpost's version by default). The agent sends the model's JSON Schema when it
registers (``handler_schema``) and the coordinator refuses submits whose params do not fit it.
A model with ``extra="allow"`` takes further fields; one with ``extra="forbid"`` refuses them.
"""

from __future__ import annotations

import json
import logging
import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from taskpost.agent.workdir import make_private_dirs
from taskpost.protocol import HandlerSchema, WorkerType

if TYPE_CHECKING:
    from taskpost.agent.net.addresses import AddressPolicy
    from taskpost.agent.settings import AgentSettings


def _default_url_policy() -> AddressPolicy:
    # Imported here: agent.net.addresses imports HandlerError from this module.
    from taskpost.agent.net.addresses import AddressPolicy

    return AddressPolicy()


class CancelReason(StrEnum):
    """Why a task was told to stop."""

    CANCEL_REQUESTED = "cancel_requested"
    """A client cancelled the job."""
    LEASE_LOST = "lease_lost"
    """The lease expired or was taken over: the result would be dropped anyway."""
    TIMEOUT = "timeout"
    """The attempt ran past its ``timeout_s``."""
    SHUTDOWN = "shutdown"
    """The agent is force-stopping; the lease is released for another agent."""


class HandlerError(Exception):
    """Raised by a handler to fail the attempt, saying whether (and when) to retry."""

    def __init__(
        self,
        message: str,
        *,
        retryable: bool = True,
        retry_delay_s: float | None = None,
        kind: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.retry_delay_s = retry_delay_s
        self.kind = kind


class MissingExtra(HandlerError):
    """A handler needs an optional dependency: install taskpost[EXTRA]. Never retried."""

    def __init__(self, extra: str, *, package: str | None = None) -> None:
        what = f" ({package} is not installed)" if package else ""
        super().__init__(f"install taskpost[{extra}]{what}", retryable=False, kind="missing_extra")
        self.extra = extra


MAX_PARTIAL_CHUNK_BYTES = 16 * 1024
MAX_PARTIAL_CHUNKS = 10_000
MAX_PARTIAL_BYTES = 4 * 1024 * 1024
"""Partial output limits per attempt; past them ``publish_partial`` drops chunks (logged once)."""


@dataclass
class _Progress:
    """Shared, never replaced: a ``ProgressWindow`` copies the reference and writes through it."""

    progress: float | None = None
    message: str | None = None
    changed: bool = False
    """Progress, message or partial output changed since the agent last sent them."""
    partial: list[Any] = field(default_factory=list)
    """Published chunks the coordinator has not acknowledged; ``partial[0]`` is chunk ``partial_base``."""
    partial_base: int = 0
    partial_count: int = 0
    partial_bytes: int = 0
    partial_truncated: bool = False


@dataclass(eq=False)
class TaskContext:
    """What a handler gets for one attempt of one task."""

    job_id: str
    task_type: str
    attempt: int
    params: dict[str, Any]
    inputs: dict[str, Path]
    """Downloaded input files by name."""
    work_dir: Path
    """This attempt's private folder; created only when something needs it."""
    worker_type: WorkerType = WorkerType.CPU
    force_cpu: bool = False
    meta: dict[str, Any] = field(default_factory=dict)
    files_roots: tuple[Path, ...] = ()
    """Directories this agent lets jobs read by ``local_path`` (resolved, absolute)."""
    url_policy: AddressPolicy = field(default_factory=_default_url_policy)
    """Which addresses the job's URLs may reach; private ones are refused unless the agent allows them."""
    logger: logging.LoggerAdapter[logging.Logger] = field(init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    _cancelled: threading.Event = field(default_factory=threading.Event, init=False, repr=False)
    _cancel_reason: CancelReason | None = field(default=None, init=False)
    _progress: _Progress = field(default_factory=_Progress, init=False, repr=False)

    def __post_init__(self) -> None:
        base = logging.getLogger(f"taskpost.handlers.{self.task_type}")
        self.logger = logging.LoggerAdapter(base, {"job_id": self.job_id, "task_type": self.task_type})

    # -- for handlers -----------------------------------------------------------------------
    @property
    def output_dir(self) -> Path:
        """Files written here are uploaded as outputs after ``run`` returns.

        Created on first use: most tasks write no files, and a folder per task costs time.
        """
        path = self.work_dir / "outputs"
        make_private_dirs(path)
        return path

    def heartbeat(self, progress: float | None = None, message: str | None = None) -> None:
        """Record progress (0..1) and a short message; sent with the agent's next heartbeat.

        Thread-safe. Values outside 0..1 are clamped (NaN is ignored), messages cut to 1000
        characters.
        """
        with self._lock:
            state = self._progress
            before = (state.progress, state.message)
            if progress is not None and not math.isnan(value := float(progress)):
                state.progress = min(1.0, max(0.0, value))
            if message is not None:
                state.message = str(message)[:1000]
            state.changed = state.changed or before != (state.progress, state.message)

    def publish_partial(self, chunk: Any) -> None:
        """Publish a piece of partial output (JSON: a transcript segment, a page's text), sent
        with the next progress report and shown live by the event streams.

        Thread-safe. A chunk over 16 KiB of JSON, or past 10,000 chunks or 4 MiB in one attempt,
        is dropped (logged once).
        """
        size = len(json.dumps(chunk, ensure_ascii=False, separators=(",", ":")).encode())
        with self._lock:
            state = self._progress
            if (
                size > MAX_PARTIAL_CHUNK_BYTES
                or state.partial_count >= MAX_PARTIAL_CHUNKS
                or state.partial_bytes + size > MAX_PARTIAL_BYTES
            ):
                warn, state.partial_truncated = not state.partial_truncated, True
            else:
                warn = False
                state.partial.append(chunk)
                state.partial_count += 1
                state.partial_bytes += size
                state.changed = True
        if warn:
            self.logger.warning("partial output past its limits: further chunks are dropped")

    def local_file(self, path: str) -> Path:
        """The file a job named by ``local_path``, if it lies inside one of the allowed roots.

        A relative path is looked up under each root in turn. Symlinks are resolved first, so a
        link pointing out of a root is refused too. Every refusal is a non-retryable
        ``HandlerError``: another attempt would not change it.
        """
        if not self.files_roots:
            raise HandlerError(
                "this agent reads no local files: start it with --files-root DIR",
                retryable=False,
                kind="local_path",
            )
        if is_relative_local_path(path):
            found = find_local_file(path, self.files_roots)
            if found is None:
                roots = ", ".join(str(root) for root in self.files_roots)
                raise HandlerError(
                    f"local_path {path!r} is not a file under any files root ({roots})",
                    retryable=False,
                    kind="local_path",
                )
            return found
        candidate = Path(path).expanduser()
        if not candidate.is_absolute():
            raise HandlerError(
                f"local_path must be absolute, got {path!r}", retryable=False, kind="local_path"
            )
        resolved = candidate.resolve()
        if not any(resolved.is_relative_to(root) for root in self.files_roots):
            roots = ", ".join(str(root) for root in self.files_roots)
            raise HandlerError(
                f"local_path {path!r} is outside the allowed roots ({roots})",
                retryable=False,
                kind="local_path",
            )
        if not resolved.is_file():
            raise HandlerError(
                f"local_path {path!r} is not an existing file", retryable=False, kind="local_path"
            )
        return resolved

    def is_cancelled(self) -> bool:
        """True once the task should stop: cancelled, lease lost, timed out or agent stopping."""
        return self._cancelled.is_set()

    def wait_cancelled(self, timeout: float) -> bool:
        """Sleep up to ``timeout`` seconds, waking early on cancellation; returns is_cancelled()."""
        return self._cancelled.wait(timeout)

    # -- for the agent ----------------------------------------------------------------------
    @property
    def cancel_reason(self) -> CancelReason | None:
        return self._cancel_reason

    def cancel(self, reason: CancelReason) -> bool:
        """Ask the handler to stop; the first reason wins. Returns True if this call set it."""
        with self._lock:
            if self._cancel_reason is not None:
                return False
            self._cancel_reason = reason
        self._cancelled.set()
        return True

    def progress_snapshot(self) -> tuple[float | None, str | None]:
        with self._lock:
            return self._progress.progress, self._progress.message

    def take_changed(self) -> bool:
        """Whether progress, message or partial output changed since the last call."""
        with self._lock:
            changed, self._progress.changed = self._progress.changed, False
            return changed

    def partial_unacknowledged(self, limit: int) -> tuple[int, list[Any]]:
        """The index of the first chunk not acknowledged yet, and up to ``limit`` chunks from it."""
        with self._lock:
            return self._progress.partial_base, self._progress.partial[:limit]

    def partial_acknowledged(self, upto: int) -> None:
        """The coordinator stored every chunk below index ``upto``."""
        with self._lock:
            state = self._progress
            done = upto - state.partial_base
            if done > 0:
                del state.partial[:done]
                state.partial_base = upto


def is_relative_local_path(path: str) -> bool:
    """Whether a ``local_path`` is to be looked up under the files roots (not absolute, no ``~``)."""
    return not path.startswith("~") and not Path(path).is_absolute()


def find_local_file(path: str, roots: Sequence[Path]) -> Path | None:
    """The first file at the relative ``path`` under one of ``roots`` (resolved, still inside it)."""
    if ".." in Path(path).parts:
        return None
    for root in roots:
        resolved = (root / path).resolve()
        if resolved.is_relative_to(root) and resolved.is_file():
            return resolved
    return None


@runtime_checkable
class Handler(Protocol):
    """A task type's implementation."""

    task_type: str

    def setup(self, settings: AgentSettings) -> None:
        """Load heavy state (models) once per agent process, before the first task."""

    def run(self, ctx: TaskContext) -> Any:
        """Do the work; return a JSON-serialisable result or raise ``HandlerError``."""


def handler_schema(handler: Handler, default_version: str) -> HandlerSchema | None:
    """What the handler declares about its params (None when it names no ``params_model``)."""
    model = getattr(handler, "params_model", None)
    if model is None:
        return None
    version = getattr(handler, "version", None) or default_version
    try:
        return HandlerSchema(version=str(version), params_schema=model.model_json_schema())
    except Exception:  # a third party's model: its type is then submitted unchecked
        logger = logging.getLogger(__name__)
        logger.exception("handler %r: its params_model has no JSON Schema", handler.task_type)
        return None
