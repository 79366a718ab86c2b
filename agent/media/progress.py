"""A task context whose progress reports land in a window of the task's progress."""

from __future__ import annotations

from taskpost.agent.handlers.base import TaskContext


class ProgressWindow(TaskContext):
    """The task's context, with progress 0..1 reported into ``[start, end]`` of the task's.

    It shares the task's fields, cancellation and logger; its ``heartbeat`` scales and hands on to
    the task's, so that a nested step (transcription after a download) can report as if it were
    the whole task.
    """

    def __init__(self, parent: TaskContext, start: float, end: float) -> None:
        self.__dict__.update(parent.__dict__)
        self._parent = parent
        self._start = start
        self._end = end

    def heartbeat(self, progress: float | None = None, message: str | None = None) -> None:
        if progress is not None:
            progress = self._start + (self._end - self._start) * min(1.0, max(0.0, progress))
        self._parent.heartbeat(progress, message)
