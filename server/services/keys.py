"""API keys: created with a role and namespaces, kept as a hash, shown in full only once.

A key may expire, and a worker key may be limited to job types. Rotating a key gives it a new
secret under the same id (so its agents and sessions stay its own); the old secret keeps working
for a grace period, so that whoever holds it can switch without downtime.
"""

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
from taskpost.protocol.fields import TASK_TYPE_PATTERN
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


def checked_task_types(role: Role, task_types: Sequence[str]) -> list[str]:
    """The job types to store for a new key of ``role`` (only worker keys have any), or InvalidParams."""
    unique = sorted(set(task_types))
    if unique and role is not Role.WORKER:
        raise InvalidParams("only a worker key is limited to task types", field="task_types")
    for name in unique:
        if not re.fullmatch(TASK_TYPE_PATTERN, name):
            raise InvalidParams(f"invalid task type {name!r}", field="task_types")
    return unique


async def insert_key(
    conn: AsyncConnection,
    raw: str,
    role: Role,
    name: str | None,
    now: float,
    namespaces: Sequence[str] = (),
    key_id: str | None = None,
    *,
    expires_in_s: float | None = None,
    task_types: Sequence[str] = (),
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
        "task_types": json.dumps(checked_task_types(role, task_types)),
        "created_at": now,
        "expires_at": None if expires_in_s is None else now + expires_in_s,
    }
    await conn.execute(insert(KEYS).values(**values))
    row = (await conn.execute(select(KEYS).where(KEYS.c.id == key_id))).one()
    return _public(row, now)


async def create(
    coord: Coordinator,
    role: Role,
    name: str | None,
    namespaces: Sequence[str] = (),
    *,
    expires_in_s: float | None = None,
    task_types: Sequence[str] = (),
) -> KeyCreated:
    raw = new_secret(role)
    now = coord.clock()
    async with coord.db.write() as conn:
        info = await insert_key(
            conn, raw, role, name, now, namespaces, expires_in_s=expires_in_s, task_types=task_types
        )
    return KeyCreated(key=raw, info=info)


async def list_keys(coord: Coordinator) -> list[KeyPublic]:
    now = coord.clock()
    async with coord.db.read() as conn:
        rows = await conn.execute(select(KEYS).order_by(KEYS.c.created_at))
        return [_public(row, now) for row in rows]


async def _single(conn: AsyncConnection, coord: Coordinator, key_id_or_prefix: str) -> Any:
    """The one key whose id or prefix this is (locked for update where rows lock), or KeyNotFound."""
    query = select(KEYS).where((KEYS.c.id == key_id_or_prefix) | (KEYS.c.prefix == key_id_or_prefix))
    if coord.db.dialect.locks_rows:
        query = query.with_for_update()
    rows = (await conn.execute(query)).all()
    if len(rows) != 1:
        raise KeyNotFound(f"no single API key has id or prefix {key_id_or_prefix!r}")
    return rows[0]


async def revoke(coord: Coordinator, key_id_or_prefix: str, by_key_id: str | None = None) -> KeyPublic:
    """Revoke a key by id or prefix; ``by_key_id``, the key asking, may not be that key (no lockout
    by one request: revoke an admin key with another one)."""
    now = coord.clock()
    async with coord.db.write() as conn:
        row = await _single(conn, coord, key_id_or_prefix)
        if row.id == by_key_id:
            raise OwnKey()
        if row.revoked_at is None:
            await conn.execute(update(KEYS).where(KEYS.c.id == row.id).values(revoked_at=now))
        row = (await conn.execute(select(KEYS).where(KEYS.c.id == row.id))).one()
    return _public(row, now)


async def rotate(coord: Coordinator, key_id_or_prefix: str, grace_s: float) -> KeyCreated:
    """A new secret for the key (same id, role, namespaces and task types); the old one keeps
    working for ``grace_s`` seconds (0: it stops now), and a secret kept from an earlier rotation
    stops now.

    A key that expires gets its lifetime again from now: a key made to last 90 days lasts 90 days
    from each rotation, so that rotating regularly keeps it working (and revives an expired one).
    A configured key (TASKPOST_ADMIN_KEY) is refused: its secret lives in the settings."""
    now = coord.clock()
    async with coord.db.write() as conn:
        row = await _single(conn, coord, key_id_or_prefix)
        if row.revoked_at is not None:
            raise KeyNotFound(
                f"API key {key_id_or_prefix!r} was revoked and cannot be rotated: create a new key",
                key_id=row.id,
            )
        if row.hash_scheme != key_hashes.SHA256:
            raise InvalidParams(
                "this admin key is configured by TASKPOST_ADMIN_KEY: change that setting (and restart"
                " the coordinator) to replace it, or rotate a generated admin key",
                field="key_id",
            )
        raw = new_secret(Role(row.role))
        expires_at = None
        if row.expires_at is not None:
            expires_at = now + (row.expires_at - (row.rotated_at or row.created_at))
        previous_expires_at = None
        if grace_s > 0:
            previous_expires_at = now + grace_s
            if row.expires_at is not None:
                previous_expires_at = min(previous_expires_at, row.expires_at)
        keep_previous = previous_expires_at is not None and previous_expires_at > now
        await conn.execute(
            update(KEYS)
            .where(KEYS.c.id == row.id)
            .values(
                prefix=raw[:_PREFIX_LENGTH],
                hash=key_hashes.sha256_hex(raw),
                previous_hash=row.hash if keep_previous else None,
                previous_prefix=row.prefix if keep_previous else None,
                previous_expires_at=previous_expires_at if keep_previous else None,
                rotated_at=now,
                expires_at=expires_at,
            )
        )
        row = (await conn.execute(select(KEYS).where(KEYS.c.id == row.id))).one()
    return KeyCreated(key=raw, info=_public(row, now))


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


def _public(row: Any, now: float) -> KeyPublic:
    role = Role(row.role)
    previous_works = row.previous_expires_at is not None and row.previous_expires_at > now
    return KeyPublic(
        id=row.id,
        prefix=row.prefix,
        role=role,
        name=row.name,
        namespaces=list(namespaces_of(role, row.namespaces)),
        created_at=require_datetime(row.created_at),
        last_used_at=to_datetime(row.last_used_at),
        revoked_at=to_datetime(row.revoked_at),
        expires_at=to_datetime(row.expires_at),
        task_types=json.loads(row.task_types),
        rotated_at=to_datetime(row.rotated_at),
        previous_expires_at=to_datetime(row.previous_expires_at) if previous_works else None,
    )
