"""One attempt of one task: work folder, inputs, handler, outputs, and the completion to report.

The handler runs in its own daemon thread (plain ``run``) or on the loop (``async def run``).
The attempt ends at the first of: the handler returning or raising, a stop request (cancel,
lost lease, forced shutdown) or the attempt's ``timeout_s`` counted from the claim. A thread
that ignores ``ctx.is_cancelled()`` cannot be killed: it is left to finish in the background.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import inspect
import logging
import secrets
import shutil
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx
from pydantic import ValidationError
from pydantic_core import PydanticSerializationError, to_jsonable_python

from taskpost.agent.client import CoordinatorClient
from taskpost.agent.errors import (
    AgentError,
    CoordinatorError,
    CoordinatorUnavailable,
    IntegrityError,
    LeaseLost,
)
from taskpost.agent.handler_threads import HandlerThreads
from taskpost.agent.handlers.base import (
    CancelReason,
    Handler,
    HandlerError,
    find_local_file,
    is_relative_local_path,
)
from taskpost.agent.heartbeat import flush_partial
from taskpost.agent.logging import task_fields
from taskpost.agent.outbox import Outbox
from taskpost.agent.sendable import describe_problems, sendable_delay, sendable_tail, sendable_text
from taskpost.agent.state import AgentState, RunningTask
from taskpost.agent.workdir import make_private_dirs
from taskpost.protocol import LOCAL_PATH_PARAM, MAX_ERROR_TEXT_LENGTH, Outcome, TaskCompletion
from taskpost.protocol.fields import MAX_NAME_LENGTH
from taskpost.protocol.tasks import RELEASE_DECLINED

logger = logging.getLogger(__name__)

T = TypeVar("T")


class _Dropped(Exception):
    """The attempt's result must not be reported (lease lost or released)."""


_THREADS = HandlerThreads()


def run_in_thread(fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
    """Run ``fn`` on a daemon thread of its own for the call (with the caller's context
    variables); threads are reused once idle (agent.handler_threads)."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()
    context = contextvars.copy_context()

    def settle(setter: Callable[[Any], None], value: Any) -> None:
        if not future.done():
            setter(value)

    def target() -> None:
        try:
            result = context.run(fn, *args)
        except BaseException as exc:
            outcome: tuple[Callable[[Any], None], Any] = (future.set_exception, exc)
        else:
            outcome = (future.set_result, result)
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits for the result
            loop.call_soon_threadsafe(settle, *outcome)

    _THREADS.run(target)
    return future


def _retrieve(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()


def failed(
    task: RunningTask,
    message: str,
    *,
    kind: str | None,
    retryable: bool = True,
    retry_delay_s: float | None = None,
    tb: str | None = None,
) -> TaskCompletion:
    """The failed attempt as the coordinator accepts it, whatever the texts hold: escaped where
    UTF-8 cannot encode them, cut to the protocol's lengths (a traceback keeps its end)."""
    return TaskCompletion(
        job_id=task.job_id,
        lease_token=task.claim.lease_token,
        outcome=Outcome.FAILED,
        error_message=sendable_text(message, MAX_ERROR_TEXT_LENGTH),
        error_kind=sendable_text(kind, MAX_NAME_LENGTH) if kind is not None else None,
        traceback=sendable_tail(tb, MAX_ERROR_TEXT_LENGTH) if tb else None,
        retryable=bool(retryable),
        retry_delay_s=sendable_delay(retry_delay_s),
    )


class TaskRunner:
    """Runs claimed tasks and queues their completions in the outbox."""

    def __init__(
        self,
        client: CoordinatorClient,
        state: AgentState,
        outbox: Outbox,
        handlers: dict[str, Handler],
        work_root: Path,
    ) -> None:
        self.client = client
        self.state = state
        self.outbox = outbox
        self.handlers = handlers
        self.work_root = work_root
        """The agent's private root (see ``agent.workdir.prepare_work_dir``)."""

    async def run(self, task: RunningTask) -> None:
        """Run one attempt to its end; never raises (except cancellation of the agent)."""
        claim = task.claim
        with task_fields(claim.job_id, claim.type):
            started = time.monotonic()
            logger.info(
                "task started (attempt %d/%d)",
                claim.attempt,
                claim.max_attempts,
                extra={"action": "task_started"},
            )
            completion: TaskCompletion | None = None
            try:
                if await _lacks_local_file(task):
                    await self._decline(task)
                else:
                    completion = await self._attempt(task)
            except _Dropped as exc:
                logger.warning("task result dropped: %s", exc, extra={"action": "task_dropped"})
            except Exception as exc:  # a bug of the agent itself; report it rather than hang
                logger.exception("task crashed in the agent", extra={"action": "task_crashed"})
                completion = failed(
                    task, f"agent error: {exc}", kind="agent_error", tb=traceback.format_exc()
                )
            finally:
                if completion is not None:
                    try:
                        await flush_partial(self.client, self.state, task)
                    except Exception:  # partial output is a preview: never let it cost the result
                        logger.exception("partial output not sent", extra={"job_id": task.job_id})
                    self.outbox.add(completion, task.lease_deadline)
                self.state.finish(task.job_id)
            if completion is not None:
                logger.info(
                    "task finished: %s in %.2fs%s",
                    completion.outcome.value,
                    time.monotonic() - started,
                    f" ({completion.error_kind}: {completion.error_message})"
                    if completion.error_message
                    else "",
                    extra={"action": "task_finished"},
                )

    async def _decline(self, task: RunningTask) -> None:
        """Give the task back for an agent that has its file; this one is not handed it again."""
        logger.info(
            "task declined: local_path %r is under none of this agent's files roots",
            task.claim.params.get(LOCAL_PATH_PARAM),
            extra={"action": "task_declined"},
        )
        worker_id = self.state.worker_id
        if worker_id is None:
            return
        try:
            await self.client.release(worker_id, [task.progress()], reason=RELEASE_DECLINED)
        except (AgentError, httpx.HTTPError) as exc:
            logger.warning("could not decline the task (its lease will expire): %s", exc)

    async def _attempt(self, task: RunningTask) -> TaskCompletion:
        handler = self.handlers.get(task.claim.type)
        if handler is None:  # the coordinator only sends advertised types; be safe anyway
            return failed(
                task, f"no handler for task type {task.claim.type!r} on this agent", kind="no_handler"
            )
        workdir = self.work_root / _folder_name(task)
        task.ctx.work_dir = workdir
        try:
            try:
                result = await self._run_until_stopped(task, handler, workdir / "inputs")
                return await self._finish(task, result)
            except _StopWith as stop:
                return self._stopped(task, stop.reason)
            except LeaseLost as exc:
                raise _Dropped(f"lease lost: {exc}") from exc
            except HandlerError as exc:
                return failed(
                    task,
                    exc.message,
                    kind=exc.kind or type(exc).__name__,
                    retryable=exc.retryable,
                    retry_delay_s=exc.retry_delay_s,
                    tb=traceback.format_exc() if exc.kind is None else None,
                )
            except Exception as exc:
                return failed(
                    task, f"{type(exc).__name__}: {exc}", kind=type(exc).__name__, tb=traceback.format_exc()
                )
        finally:
            if workdir.exists():
                shutil.rmtree(workdir, ignore_errors=True)

    async def _run_until_stopped(self, task: RunningTask, handler: Handler, inputs_dir: Path) -> Any:
        """Download inputs and run the handler; raises, or returns the handler's result."""
        work = asyncio.ensure_future(self._download_and_run(task, handler, inputs_dir))
        work.add_done_callback(_retrieve)
        stopper = asyncio.ensure_future(task.stop.wait())
        timeout_s = task.claim.timeout_s
        left = None if timeout_s is None else max(0.0, task.claimed_at + timeout_s - time.monotonic())
        try:
            done, _ = await asyncio.wait({work, stopper}, timeout=left, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopper.cancel()
            if not work.done():
                work.cancel()
        if work not in done and not done:
            task.cancel(CancelReason.TIMEOUT)
        reason = task.ctx.cancel_reason
        if reason is not None or work not in done:
            raise _StopWith(reason or CancelReason.SHUTDOWN)
        return work.result()

    def _stopped(self, task: RunningTask, reason: CancelReason) -> TaskCompletion:
        if reason is CancelReason.CANCEL_REQUESTED:
            return TaskCompletion(
                job_id=task.job_id,
                lease_token=task.claim.lease_token,
                outcome=Outcome.CANCELLED,
                error_message="cancelled on request",
                error_kind="cancelled",
                retryable=False,
            )
        if reason is CancelReason.TIMEOUT:
            return failed(task, f"timed out after {task.claim.timeout_s}s", kind="timeout")
        raise _Dropped(reason.value)

    async def _download_and_run(self, task: RunningTask, handler: Handler, inputs_dir: Path) -> Any:
        if task.claim.inputs:
            await asyncio.to_thread(make_private_dirs, inputs_dir)
        for item in task.claim.inputs:
            if Path(item.name).name != item.name or item.name in ("", ".", ".."):
                raise HandlerError(f"unsafe input name {item.name!r}", retryable=False, kind="bad_input")
            dest = inputs_dir / item.name
            try:
                await self.client.download_input(
                    task.job_id, item.name, task.claim.lease_token, dest, sha256=item.sha256
                )
            except IntegrityError as exc:
                raise HandlerError(str(exc), kind="input_integrity") from exc
            except CoordinatorUnavailable as exc:
                raise HandlerError(f"input {item.name!r}: {exc}", kind="input_download") from exc
            except CoordinatorError as exc:
                raise HandlerError(
                    f"input {item.name!r}: {exc}", kind="input_download", retryable=exc.status != 404
                ) from exc
            task.ctx.inputs[item.name] = dest
        if inspect.iscoroutinefunction(handler.run):
            return await handler.run(task.ctx)
        return await run_in_thread(handler.run, task.ctx)

    async def _finish(self, task: RunningTask, result: Any) -> TaskCompletion:
        try:
            payload = to_jsonable_python(result)
        except (PydanticSerializationError, UnicodeEncodeError) as exc:  # the latter for a dict key
            return _bad_result(task, f"handler result is not JSON-serialisable: {exc}")
        try:
            completion = TaskCompletion(
                job_id=task.job_id,
                lease_token=task.claim.lease_token,
                outcome=Outcome.SUCCEEDED,
                result=payload,
            )
        except ValidationError as exc:  # NaN, infinity, a lone surrogate, nesting too deep
            return _bad_result(task, f"handler result cannot be sent: {describe_problems(exc, 'result')}")
        await self._upload_outputs(task)
        if task.ctx.cancel_reason in (CancelReason.LEASE_LOST, CancelReason.SHUTDOWN):
            raise _Dropped(f"stopped while uploading outputs ({task.ctx.cancel_reason.value})")
        return completion

    async def _upload_outputs(self, task: RunningTask) -> None:
        outputs = task.ctx.work_dir / "outputs"
        if not outputs.is_dir():
            return
        for path in sorted(outputs.iterdir()):
            if not path.is_file():
                logger.warning(
                    "output %r skipped: only plain files at the top of output_dir are uploaded", path.name
                )
                continue
            try:
                info = await self.client.upload_output(task.job_id, path.name, task.claim.lease_token, path)
            except CoordinatorUnavailable as exc:
                raise HandlerError(f"output {path.name!r}: {exc}", kind="output_upload") from exc
            except CoordinatorError as exc:
                raise HandlerError(
                    f"output {path.name!r}: {exc}", kind="output_upload", retryable=exc.status != 413
                ) from exc
            logger.info(
                "output uploaded: %s (%d bytes)", info.name, info.size, extra={"action": "output_uploaded"}
            )


async def _lacks_local_file(task: RunningTask) -> bool:
    """Whether the task names a relative ``local_path`` that no files root of this agent holds."""
    path = task.claim.params.get(LOCAL_PATH_PARAM)
    if not isinstance(path, str) or not is_relative_local_path(path):
        return False
    return await asyncio.to_thread(find_local_file, path, task.ctx.files_roots) is None


class _StopWith(Exception):
    def __init__(self, reason: CancelReason) -> None:
        super().__init__(reason.value)
        self.reason = reason


def _bad_result(task: RunningTask, message: str) -> TaskCompletion:
    """The same handler would give the same result again: not retried."""
    return failed(task, message, kind="bad_result", retryable=False)


def _folder_name(task: RunningTask) -> str:
    """``<job id>-attempt<n>-<random>``, under the work root; created only when used.

    No part of the lease token: folder names show in ``ls`` and in logs, and the token must not.
    The random part keeps two holders of one attempt apart: a released attempt is claimed again
    under its number, maybe by another agent sharing this root while the first one winds down.
    """
    job = "".join(ch if ch.isascii() and (ch.isalnum() or ch in "-_") else "_" for ch in task.job_id)
    return f"{job[:64] or 'task'}-attempt{task.claim.attempt}-{secrets.token_hex(4)}"
