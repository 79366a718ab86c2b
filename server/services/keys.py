"""API keys: created with a role and namespaces, kept as a hash, shown in full only once."""

from __future__ import annotations

import json
import re
import secrets
import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from taskpost.protocol import DEFAULT_NAMESPACE, NAMESPACE_PATTERN, KeyCreated, KeyPublic, Role
from taskpost.server.coordinator import Coordinator
from taskpost.server.db.models import ApiKey
from taskpost.server.errors import InvalidParams, KeyNotFound, OwnKey
from taskpost.server.services import key_hashes
from taskpost.server.services.convert import require_datetime, to_datetime

KEYS = ApiKey.__table__  # type: ignore[attr-defined]

_PREFIX_LENGTH = 12
CONFIGURED_PREFIX = "cfg_"
"""Configured keys show this and part of their id as a prefix: none of their characters."""

# Replicas starting together on an empty database must store one bootstrap key, not one each:
# each start-up key gets an id every replica computes alike, so the primary key refuses the
# second insert and that replica looks again. (A configured key's id also counts the configured
# keys before it: a changed TASKPOST_ADMIN_KEY is a new key with a new id.)
_STARTUP_KEY_IDS = uuid.UUID("5f0c1d2e-7a43-4b1e-9a0d-2c6b7e8f9a10")
_BOOTSTRAP_KEY_ID = str(uuid.uuid5(_STARTUP_KEY_IDS, "generated"))
_STARTUP_TRIES = 3


def new_secret(role: Role) -> str:
    return f"tp_{role.value[0]}_{secrets.token_urlsafe(32)}"


def namespaces_of(role: Role, stored: str) -> tuple[str, ...]:
    """A key's namespaces from its column; a client key made before namespaces is in the default one."""
    names = tuple(json.loads(stored))
    if role is Role.CLIENT and not names:
        return (DEFAULT_NAMESPACE,)
    return names


def checked_namespaces(role: Role, namespaces: Sequence[str]) -> list[str]:
    """The namespaces to store for a new key of ``role``, or InvalidParams."""
    unique = sorted(set(namespaces))
    for name in unique:
        if not re.fullmatch(NAMESPACE_PATTERN, name):
            raise InvalidParams(
                f"invalid namespace {name!r}: lower-case letters, digits, '_', '.', '-' (64 at most)",
                field="namespaces",
            )
    if role is Role.ADMIN and unique:
        raise InvalidParams("an admin key sees every namespace: give it none", field="namespaces")
    if role is Role.METRICS and unique:
        raise InvalidParams("a metrics key sees no jobs: give it no namespace", field="namespaces")
    if role is Role.CLIENT:
        if len(unique) > 1:
            raise InvalidParams("a client key belongs to exactly one namespace", field="namespaces")
        return unique or [DEFAULT_NAMESPACE]
    return unique


async def insert_key(
    conn: AsyncConnection,
    raw: str,
    role: Role,
    name: str | None,
    now: float,
    namespaces: Sequence[str] = (),
    key_id: str | None = None,
) -> KeyPublic:
    """Store a generated key (SHA-256: see server.services.key_hashes)."""
    key_id = key_id or str(uuid.uuid4())
    values = {
        "id": key_id,
        "prefix": raw[:_PREFIX_LENGTH],
        "hash": key_hashes.sha256_hex(raw),
        "hash_scheme": key_hashes.SHA256,
        "role": role.value,
        "name": name,
        "namespaces": json.dumps(checked_namespaces(role, namespaces)),
        "created_at": now,
    }
    await conn.execute(insert(KEYS).values(**values))
    row = (await conn.execute(select(KEYS).where(KEYS.c.id == key_id))).one()
    return _public(row)


async def create(
    coord: Coordinator, role: Role, name: str | None, namespaces: Sequence[str] = ()
) -> KeyCreated:
    raw = new_secret(role)
    async with coord.db.write() as conn:
        info = await insert_key(conn, raw, role, name, coord.clock(), namespaces)
    return KeyCreated(key=raw, info=info)


async def list_keys(coord: Coordinator) -> list[KeyPublic]:
    async with coord.db.read() as conn:
        rows = await conn.execute(select(KEYS).order_by(KEYS.c.created_at))
        return [_public(row) for row in rows]


async def revoke(coord: Coordinator, key_id_or_prefix: str, by_key_id: str | None = None) -> KeyPublic:
    """Revoke a key by id or prefix; ``by_key_id``, the key asking, may not be that key (no lockout
    by one request: revoke an admin key with another one)."""
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
        if row.id == by_key_id:
            raise OwnKey()
        if row.revoked_at is None:
            await conn.execute(update(KEYS).where(KEYS.c.id == row.id).values(revoked_at=now))
        row = (await conn.execute(select(KEYS).where(KEYS.c.id == row.id))).one()
    return _public(row)


async def ensure_admin_key(coord: Coordinator, configured: str | None) -> str | None:
    """Make sure an admin key exists. Returns a newly generated secret to show once, or None.

    Safe when several replicas start at once: one of them stores the key, the others find it."""
    now = coord.clock()
    for attempt in range(_STARTUP_TRIES):
        try:
            async with coord.db.write() as conn:
                if configured:
                    await _ensure_configured(conn, coord, configured, now)
                    return None
                admins = (
                    await conn.execute(
                        select(func.count()).select_from(KEYS).where(KEYS.c.role == Role.ADMIN.value)
                    )
                ).scalar_one()
                if admins:
                    return None
                raw = new_secret(Role.ADMIN)
                await insert_key(conn, raw, Role.ADMIN, "bootstrap", now, key_id=_BOOTSTRAP_KEY_ID)
                return raw
        except IntegrityError:
            if attempt == _STARTUP_TRIES - 1:
                raise
    return None


async def _ensure_configured(conn: AsyncConnection, coord: Coordinator, raw: str, now: float) -> None:
    """Store TASKPOST_ADMIN_KEY with scrypt, unless it is there already (even revoked)."""
    digest = key_hashes.sha256_hex(raw)
    legacy = (
        await conn.execute(
            select(KEYS.c.id).where(KEYS.c.hash == digest, KEYS.c.hash_scheme == key_hashes.SHA256)
        )
    ).first()
    if legacy is not None:
        # An earlier version kept it as a plain SHA-256 with its first characters as the prefix.
        salt, hashed = await key_hashes.scrypt_new(raw)
        await conn.execute(
            update(KEYS)
            .where(KEYS.c.id == legacy.id)
            .values(
                hash=hashed,
                hash_scheme=key_hashes.SCRYPT,
                salt=salt,
                prefix=CONFIGURED_PREFIX + legacy.id[:8],
            )
        )
        coord.verified_keys[digest] = legacy.id
        return
    scrypt_rows = (
        await conn.execute(
            select(KEYS.c.id, KEYS.c.salt, KEYS.c.hash).where(KEYS.c.hash_scheme == key_hashes.SCRYPT)
        )
    ).all()
    for row in scrypt_rows:
        if await key_hashes.scrypt_matches(raw, row.salt, row.hash):
            coord.verified_keys[digest] = row.id
            return
    key_id = str(uuid.uuid5(_STARTUP_KEY_IDS, f"configured-{len(scrypt_rows)}"))
    salt, hashed = await key_hashes.scrypt_new(raw)
    await conn.execute(
        insert(KEYS).values(
            id=key_id,
            prefix=CONFIGURED_PREFIX + key_id[:8],
            hash=hashed,
            hash_scheme=key_hashes.SCRYPT,
            salt=salt,
            role=Role.ADMIN.value,
            name="bootstrap (TASKPOST_ADMIN_KEY)",
            namespaces="[]",
            created_at=now,
        )
    )
    coord.verified_keys[digest] = key_id


def _public(row: Any) -> KeyPublic:
    role = Role(row.role)
    return KeyPublic(
        id=row.id,
        prefix=row.prefix,
        role=role,
        name=row.name,
        namespaces=list(namespaces_of(role, row.namespaces)),
        created_at=require_datetime(row.created_at),
        last_used_at=to_datetime(row.last_used_at),
        revoked_at=to_datetime(row.revoked_at),
    )
