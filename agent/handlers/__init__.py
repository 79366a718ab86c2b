"""Task handlers: the built-in ones, and third parties' found through the entry-point group
``taskpost.handlers``.

The built-in handlers are listed here, not in package metadata, so that they load from a checkout
that was never installed. A package adds a task type by declaring, in its ``pyproject.toml``::

    [project.entry-points."taskpost.handlers"]
    ocr = "my_package.ocr:OcrHandler"

The entry point names a class; the agent instantiates it without arguments. A class that
declares ``requires`` (see ``agent.handlers.requirements``) is skipped, with a one-line notice,
when a module it needs is not installed.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from importlib.metadata import EntryPoint, entry_points

from taskpost.agent.errors import ConfigError
from taskpost.agent.handlers.base import CancelReason, Handler, HandlerError, MissingExtra, TaskContext
from taskpost.agent.handlers.requirements import install_hint, missing_requirements

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

BUILTIN_HANDLERS = tuple(
    EntryPoint(name, f"taskpost.agent.handlers.{value}", ENTRY_POINT_GROUP)
    for name, value in (
        ("noop", "noop:NoopHandler"),
        ("transcription", "transcription:TranscriptionHandler"),
        ("ocr", "ocr:OcrHandler"),
        ("url_audio", "url_audio:UrlAudioHandler"),
        ("document", "document:DocumentHandler"),
        ("analyze", "analyze:AnalyzeHandler"),
        ("describe", "describe:DescribeHandler"),
        ("audiobook", "audiobook:AudiobookHandler"),
        ("video_audio", "video_audio:VideoAudioHandler"),
        ("webpage", "webpage:WebpageHandler"),
    )
)

logger = logging.getLogger(__name__)


def load_handler(entry_point: EntryPoint) -> Handler | None:
    """Import and instantiate one handler; None (with a one-line notice) when it cannot run here."""
    loaded = _load(entry_point)
    return loaded if not isinstance(loaded, str) else None


def _load(entry_point: EntryPoint) -> Handler | str:
    """The handler, or why it is skipped (already logged)."""
    name = entry_point.name
    fields = {"action": "handler_skipped", "task_type": name}
    try:
        factory = entry_point.load()
    except ImportError as exc:
        logger.warning("handler %r skipped: %s (is its extra installed?)", name, exc, extra=fields)
        return f"it cannot be imported: {exc}"
    except Exception:
        logger.exception("handler %r skipped: loading it failed", name, extra=fields)
        return "loading it failed"
    if missing := missing_requirements(factory):
        hint = install_hint(missing)
        logger.info("handler %r not offered: %s", name, hint, extra=fields)
        return hint
    handler = factory()
    if not isinstance(handler, Handler):
        logger.error("handler %r skipped: %r has no task_type/setup/run", name, factory, extra=fields)
        return "it is not a handler"
    return handler


def discover_handlers(
    wanted: Iterable[str] = (), *, eps: Iterable[EntryPoint] | None = None
) -> dict[str, Handler]:
    """Handlers by task type: the built-in ones and every installed plugin, or only those in
    ``wanted``. ``eps`` replaces both (for tests).

    Raises ``ConfigError`` when a wanted task type has no loadable handler.
    """
    wanted_set = set(wanted)
    found: dict[str, Handler] = {}
    skipped: dict[str, str] = {}
    points = [*BUILTIN_HANDLERS, *entry_points(group=ENTRY_POINT_GROUP)] if eps is None else eps
    for ep in points:
        if wanted_set and ep.name not in wanted_set:
            continue
        handler = _load(ep)
        if isinstance(handler, str):
            skipped[ep.name] = handler
            continue
        if handler.task_type in found:
            logger.warning("two handlers for task type %r; keeping the first", handler.task_type)
            continue
        found[handler.task_type] = handler
    missing = wanted_set - set(found)
    if missing:
        reasons = [f"{name}: {skipped[name]}" if name in skipped else name for name in sorted(missing)]
        raise ConfigError(f"no installed handler for task type(s): {'; '.join(reasons)}")
    return found
