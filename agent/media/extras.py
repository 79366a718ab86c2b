"""Optional dependencies of the media handlers, imported when first used.

Packages that ship type hints are imported directly inside the function that needs them; the ones
without (pypdfium2, easyocr) go through :func:`require`, which hands back the module untyped.
"""

from __future__ import annotations

import importlib
from typing import Any

from taskpost.agent.handlers.base import MissingExtra


def require(module: str, extra: str, *, package: str | None = None) -> Any:
    """Import ``module``, or raise ``MissingExtra(extra)`` naming the missing package."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtra(extra, package=package or module.split(".")[0]) from exc
