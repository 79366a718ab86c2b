"""The per-namespace secrets that sign webhook deliveries, and the signature itself.

A namespace's secret is made the first time it is needed (a delivery, or a client asking for
it); rotating replaces it at once: deliveries from then on are signed with the new one.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from taskpost.server.coordinator import Coordinator
from taskpost.server.db.models import NamespaceSecret

SECRETS = NamespaceSecret.__table__  # type: ignore[attr-defined]
SECRET_PREFIX = "whsec_"


@dataclass(frozen=True)
class WebhookSecret:
    namespace: str
    secret: str
    created_at: float


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def signature_header(secret: str, body: bytes, timestamp: int) -> str:
    """``t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>." + body, keyed with the secret>``."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


async def _read(conn: AsyncConnection, namespace: str) -> WebhookSecret | None:
    row = (await conn.execute(select(SECRETS).where(SECRETS.c.namespace == namespace))).first()
    return None if row is None else WebhookSecret(row.namespace, row.secret, row.created_at)


async def secret_for(coord: Coordinator, namespace: str) -> WebhookSecret:
    """The namespace's secret, made now if it has none."""
    async with coord.db.read() as conn:
        found = await _read(conn, namespace)
    if found is not None:
        return found
    async with coord.db.write() as conn:
        # Another replica may make one at the same moment: the first insert wins, both read it.
        insert = coord.db.dialect.insert_ignoring_duplicates(SECRETS)
        await conn.execute(insert.values(namespace=namespace, secret=new_secret(), created_at=coord.clock()))
        made = await _read(conn, namespace)
    assert made is not None
    return made


async def rotate(coord: Coordinator, namespace: str) -> WebhookSecret:
    """Replace the namespace's secret with a new one (made if it had none)."""
    await secret_for(coord, namespace)
    fresh = WebhookSecret(namespace, new_secret(), coord.clock())
    async with coord.db.write() as conn:
        await conn.execute(
            update(SECRETS)
            .where(SECRETS.c.namespace == namespace)
            .values(secret=fresh.secret, created_at=fresh.created_at)
        )
    return fresh
