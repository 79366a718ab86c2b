"""``noop``: a handler that does nothing useful, for tests, demos and smoke checks.

Params (all optional):

- ``sleep_s``: sleep this long in small steps, reporting progress and stopping on cancellation
- ``fail``: raise ``HandlerError(fail)``; ``fail_retryable`` (default true), ``retry_delay_s``
- ``outputs``: ``{name: text}`` written to the output folder (so they are uploaded)
- ``echo_inputs``: the result lists the sha256 and size of every input file
- ``partials``: texts published as partial output (``{"text": ...}``), spread over ``sleep_s``
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from taskpost.agent.handlers.base import HandlerError, TaskContext
from taskpost.agent.handlers.params import NoopParams, Params
from taskpost.agent.workdir import write_private_text

if TYPE_CHECKING:
    from taskpost.agent.settings import AgentSettings

STEP_S = 0.05


def _file_digest(path: Path) -> dict[str, Any]:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return {"sha256": digest.hexdigest(), "size": path.stat().st_size}


class NoopHandler:
    """Echoes its params back; can sleep, fail and write outputs on request."""

    task_type = "noop"
    params_model: ClassVar[type[Params]] = NoopParams

    def setup(self, settings: AgentSettings) -> None:
        """Nothing to load."""

    def run(self, ctx: TaskContext) -> dict[str, Any]:
        params = ctx.params
        sleep_s = float(params.get("sleep_s") or 0)
        partials = [str(text) for text in params.get("partials") or []]
        if sleep_s > 0 and not self._sleep(ctx, sleep_s, partials):
            return {"params": params, "cancelled": True}
        for text in partials:
            ctx.publish_partial({"text": text})
        if params.get("fail"):
            delay = params.get("retry_delay_s")
            raise HandlerError(
                str(params["fail"]),
                retryable=bool(params.get("fail_retryable", True)),
                retry_delay_s=float(delay) if delay is not None else None,
                kind="noop_failure",
            )
        outputs = params.get("outputs") or {}
        if not isinstance(outputs, dict):
            raise HandlerError("outputs must be an object of name -> text", retryable=False)
        for name, text in outputs.items():
            if Path(name).name != name:
                raise HandlerError(f"bad output name {name!r}", retryable=False)
            write_private_text(ctx.output_dir / name, str(text))
        result: dict[str, Any] = {"params": params, "attempt": ctx.attempt}
        if outputs:
            result["outputs"] = sorted(outputs)
        if params.get("echo_inputs"):
            result["inputs"] = {name: _file_digest(path) for name, path in ctx.inputs.items()}
        ctx.heartbeat(1.0, "done")
        return result

    @staticmethod
    def _sleep(ctx: TaskContext, sleep_s: float, partials: list[str]) -> bool:
        """Sleep ``sleep_s`` reporting progress, publishing ``partials`` as it goes (each one taken
        off the list once its share of the time has passed); False when cancelled first."""
        deadline = time.monotonic() + sleep_s
        total = len(partials)
        published = 0
        while (left := deadline - time.monotonic()) > 0:
            done = 1 - left / sleep_s
            while partials and published < int(done * total):
                ctx.publish_partial({"text": partials.pop(0)})
                published += 1
            ctx.heartbeat(done, f"sleeping, {left:.1f}s left")
            if ctx.wait_cancelled(min(STEP_S, left)):
                return False
        return True
