"""Which file a media task works on: a local path on the agent's machine, or an uploaded input."""

from __future__ import annotations

from pathlib import Path

from taskpost.agent.handlers.base import HandlerError, TaskContext
from taskpost.protocol import LOCAL_PATH_PARAM


def media_input(ctx: TaskContext) -> Path:
    """The job's ``local_path`` (checked against the agent's roots), else its uploaded input.

    A job with several inputs names the one to use with the ``input`` param.
    """
    local_path = ctx.params.get(LOCAL_PATH_PARAM)
    if local_path is not None:
        if not isinstance(local_path, str):
            raise HandlerError("local_path must be a string", retryable=False, kind="bad_params")
        return ctx.local_file(local_path)
    wanted = ctx.params.get("input")
    if wanted is not None:
        if wanted not in ctx.inputs:
            known = ", ".join(sorted(ctx.inputs)) or "none"
            raise HandlerError(
                f"no input named {wanted!r} (inputs: {known})", retryable=False, kind="bad_params"
            )
        return ctx.inputs[wanted]
    if len(ctx.inputs) == 1:
        return next(iter(ctx.inputs.values()))
    if not ctx.inputs:
        raise HandlerError(
            "the job has no input file: upload one, or name a file with local_path",
            retryable=False,
            kind="no_input",
        )
    raise HandlerError(
        f"the job has {len(ctx.inputs)} inputs: name the one to process with the 'input' param",
        retryable=False,
        kind="bad_params",
    )
