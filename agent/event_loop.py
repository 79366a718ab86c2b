"""The agent's event loop: uvloop where it is installed (not on Windows), else asyncio's own.

An agent's loop mostly moves HTTP round trips and wakes tasks; uvloop does that with less CPU
per turn, which on a machine shared with the handlers is time given back to them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(main)`` on the fastest loop available."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)
