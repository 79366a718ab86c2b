"""Rules for URLs the coordinator itself sends requests to (webhooks)."""

from __future__ import annotations

from urllib.parse import urlsplit

from taskpost.server.errors import InvalidParams


async def refuse_unsafe_url(url: str, *, field: str, allow_private: bool) -> None:
    """Raise ``InvalidParams`` naming ``field`` unless ``url`` is one the coordinator may call."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidParams(f"{field} must be an http or https URL with a host", field=field)
