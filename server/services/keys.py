"""API keys: created with a role, kept as a SHA-256 hash, shown in full only once."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from protocol import KeyCreated, KeyPublic, Role
from server.coordinator import Coordinator
from server.db.models import ApiKey
from server.errors import KeyNotFound, NotAuthenticated
from server.services.convert import require_datetime, to_datetime

KEYS = ApiKey.__table__  # type: ignore[attr-defined]

_PREFIX_LENGTH = 12
# last_used_at is informative; writing it on every request would double the writes.
_LAST_USED_PRECISION_S = 60.0


@dataclass(frozen=True)
class Principal:
    """Who is calling."""

    key_id: str
    role: Role


def hash_key(raw: str) -> str:
    # Keys are 256-bit random secrets, so a fast hash is enough (no password stretching needed).
    return hashlib.sha256(raw.encode()).hexdigest()


def new_secret(role: Role) -> str:
    return f"tp_{role.value[0]}_{secrets.token_urlsafe(32)}"


async def insert_key(conn: AsyncConnection, raw: str, role: Role, name: str | None, now: float) -> KeyPublic:
    key_id = str(uuid.uuid4())
    values = {
        "id": key_id,
        "prefix": raw[:_PREFIX_LENGTH],
        "hash": hash_key(raw),
        "role": role.value,
        "name": name,
        "created_at": now,
    }
    await conn.execute(insert(KEYS).values(**values))
    row = (await conn.execute(select(KEYS).where(KEYS.c.id == key_id))).one()
    return _public(row)


async def create(coord: Coordinator, role: Role, name: str | None) -> KeyCreated:
    raw = new_secret(role)
    async with coord.db.write() as conn:
        info = await insert_key(conn, raw, role, name, coord.clock())
    return KeyCreated(key=raw, info=info)


async def list_keys(coord: Coordinator) -> list[KeyPublic]:
    async with coord.db.read() as conn:
        rows = await conn.execute(select(KEYS).order_by(KEYS.c.created_at))
        return [_public(row) for row in rows]


async def revoke(coord: Coordinator, key_id_or_prefix: str) -> KeyPublic:
    now = coord.clock()
    async with coord.db.write() as conn:
        rows = (
            await conn.execute(
                select(KEYS).where((KEYS.c.id == key_id_or_prefix) | (KEYS.c.prefix == key_id_or_prefix))
            )
        ).all()
        if len(rows) != 1:
            raise KeyNotFound(f"no single API key has id or prefix {key_id_or_prefix!r}")
        row = rows[0]
        if row.revoked_at is None:
            await conn.execute(update(KEYS).where(KEYS.c.id == row.id).values(revoked_at=now))
        row = (await conn.execute(select(KEYS).where(KEYS.c.id == row.id))).one()
    return _public(row)


async def authenticate(coord: Coordinator, raw: str | None) -> Principal:
    if not raw:
        raise NotAuthenticated()
    async with coord.db.read() as conn:
        row = (
            await conn.execute(
                select(KEYS.c.id, KEYS.c.role, KEYS.c.revoked_at, KEYS.c.last_used_at).where(
                    KEYS.c.hash == hash_key(raw)
                )
            )
        ).first()
    if row is None:
        raise NotAuthenticated("unknown API key: check the key, or create one with 'taskpost keys create'")
    if row.revoked_at is not None:
        raise NotAuthenticated("this API key was revoked")
    now = coord.clock()
    if row.last_used_at is None or now - row.last_used_at > _LAST_USED_PRECISION_S:
        async with coord.db.write() as conn:
            await conn.execute(update(KEYS).where(KEYS.c.id == row.id).values(last_used_at=now))
    return Principal(key_id=row.id, role=Role(row.role))


async def ensure_admin_key(coord: Coordinator, configured: str | None) -> str | None:
    """Make sure an admin key exists. Returns a newly generated secret to show once, or None."""
    now = coord.clock()
    async with coord.db.write() as conn:
        if configured:
            exists = (
                await conn.execute(select(KEYS.c.id).where(KEYS.c.hash == hash_key(configured)))
            ).first()
            if exists is None:
                await insert_key(conn, configured, Role.ADMIN, "bootstrap (TASKPOST_ADMIN_KEY)", now)
            return None
        admins = (
            await conn.execute(select(func.count()).select_from(KEYS).where(KEYS.c.role == Role.ADMIN.value))
        ).scalar_one()
        if admins:
            return None
        raw = new_secret(Role.ADMIN)
        await insert_key(conn, raw, Role.ADMIN, "bootstrap", now)
        return raw


def _public(row: Any) -> KeyPublic:
    return KeyPublic(
        id=row.id,
        prefix=row.prefix,
        role=Role(row.role),
        name=row.name,
        created_at=require_datetime(row.created_at),
        last_used_at=to_datetime(row.last_used_at),
        revoked_at=to_datetime(row.revoked_at),
    )
