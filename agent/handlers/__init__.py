"""Task handlers, found through the entry-point group ``taskpost.handlers``.

A package adds a task type by declaring, in its ``pyproject.toml``::

    [project.entry-points."taskpost.handlers"]
    ocr = "my_package.ocr:OcrHandler"

The entry point names a class; the agent instantiates it without arguments.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from importlib.metadata import EntryPoint, entry_points

from agent.errors import ConfigError
from agent.handlers.base import CancelReason, Handler, HandlerError, MissingExtra, TaskContext

__all__ = [
    "ENTRY_POINT_GROUP",
    "CancelReason",
    "Handler",
    "HandlerError",
    "MissingExtra",
    "TaskContext",
    "discover_handlers",
    "load_handler",
]

ENTRY_POINT_GROUP = "taskpost.handlers"

logger = logging.getLogger(__name__)


def load_handler(entry_point: EntryPoint) -> Handler | None:
    """Import and instantiate one handler; None (with a warning) when it cannot be loaded."""
    try:
        factory = entry_point.load()
    except ImportError as exc:
        logger.warning(
            "handler %r skipped: %s (is its extra installed?)",
            entry_point.name,
            exc,
            extra={"action": "handler_skipped", "task_type": entry_point.name},
        )
        return None
    except Exception:
        logger.exception(
            "handler %r skipped: loading it failed",
            entry_point.name,
            extra={"action": "handler_skipped", "task_type": entry_point.name},
        )
        return None
    handler = factory()
    if not isinstance(handler, Handler):
        logger.error(
            "handler %r skipped: %r has no task_type/setup/run",
            entry_point.name,
            factory,
            extra={"action": "handler_skipped", "task_type": entry_point.name},
        )
        return None
    return handler


def discover_handlers(
    wanted: Iterable[str] = (), *, eps: Iterable[EntryPoint] | None = None
) -> dict[str, Handler]:
    """Handlers by task type: every installed one, or only those in ``wanted``.

    Raises ``ConfigError`` when a wanted task type has no loadable handler.
    """
    wanted_set = set(wanted)
    found: dict[str, Handler] = {}
    points = entry_points(group=ENTRY_POINT_GROUP) if eps is None else eps
    for ep in points:
        if wanted_set and ep.name not in wanted_set:
            continue
        handler = load_handler(ep)
        if handler is None:
            continue
        if handler.task_type in found:
            logger.warning("two handlers for task type %r; keeping the first", handler.task_type)
            continue
        found[handler.task_type] = handler
    missing = wanted_set - set(found)
    if missing:
        raise ConfigError(f"no installed handler for task type(s): {', '.join(sorted(missing))}")
    return found
