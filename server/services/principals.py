"""Who is calling: a raw API key to a ``Principal``, read from the database on every request.

A key matches by the SHA-256 of its current secret, or of the secret it had before its last
rotation while that one's grace period lasts; a key past ``expires_at`` is refused with
``key_expired``, so an operator knows to issue a new one rather than look for a typo.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, select, update

from taskpost.protocol import Role
from taskpost.server.coordinator import Coordinator
from taskpost.server.errors import KeyExpired, NotAuthenticated
from taskpost.server.services import key_hashes
from taskpost.server.services.convert import require_datetime
from taskpost.server.services.keys import KEYS, namespaces_of

# last_used_at is informative; writing it on every request would double the writes.
_LAST_USED_PRECISION_S = 60.0
_COLUMNS = (
    KEYS.c.id,
    KEYS.c.prefix,
    KEYS.c.role,
    KEYS.c.namespaces,
    KEYS.c.task_types,
    KEYS.c.revoked_at,
    KEYS.c.last_used_at,
    KEYS.c.expires_at,
    KEYS.c.previous_hash,
    KEYS.c.previous_expires_at,
)


@dataclass(frozen=True)
class Principal:
    """Who is calling, as the key says on this request."""

    key_id: str
    role: Role
    namespaces: tuple[str, ...] = ()
    """client: its one namespace; worker: those it may claim from (empty: all); admin: empty."""
    task_types: tuple[str, ...] = ()
    """worker: the job types it may register and claim (empty: all); other roles: empty."""


class AuthenticationFailed(NotAuthenticated):
    """NotAuthenticated with a reason for the log: it never holds the key."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class ExpiredKeyFailed(AuthenticationFailed, KeyExpired):
    """A known key past its expiry, or a rotated-out secret past its grace period (``key_expired``)."""


async def authenticate(coord: Coordinator, raw: str | None) -> Principal:
    if not raw:
        raise AuthenticationFailed(NotAuthenticated.__doc__ or "", "no key")
    digest = key_hashes.sha256_hex(raw)
    row = await _find(coord, raw, digest)
    if row is None:
        raise AuthenticationFailed(
            "unknown API key: check the key, or create one with 'taskpost keys create'", "unknown key"
        )
    if row.revoked_at is not None:
        raise AuthenticationFailed("this API key was revoked", f"revoked key {row.prefix}")
    now = coord.clock()
    _check_not_expired(row, digest, now)
    if row.last_used_at is None or now - row.last_used_at > _LAST_USED_PRECISION_S:
        async with coord.db.write() as conn:
            await conn.execute(update(KEYS).where(KEYS.c.id == row.id).values(last_used_at=now))
    role = Role(row.role)
    return Principal(
        key_id=row.id,
        role=role,
        namespaces=namespaces_of(role, row.namespaces),
        task_types=tuple(json.loads(row.task_types)),
    )


def _check_not_expired(row: Any, digest: str, now: float) -> None:
    if row.expires_at is not None and row.expires_at <= now:
        raise ExpiredKeyFailed(
            f"this API key expired at {require_datetime(row.expires_at).isoformat()}: create a new"
            " one ('taskpost keys create') or have an admin rotate it ('taskpost keys rotate')",
            f"expired key {row.prefix}",
        )
    if row.previous_hash == digest and (row.previous_expires_at is None or row.previous_expires_at <= now):
        # The secret before the last rotation, whose grace period is over.
        ended = (
            f" at {require_datetime(row.previous_expires_at).isoformat()}"
            if row.previous_expires_at is not None
            else ""
        )
        raise ExpiredKeyFailed(
            f"this API key was replaced by a rotation and stopped working{ended}: use the new"
            " secret the rotation gave, or create a new key ('taskpost keys create')",
            f"rotated-out secret of key {row.prefix}",
        )


# Built once: every request looks its key up, and SQLAlchemy reuses a statement's cache key.
_BY_ID = select(*_COLUMNS).where(KEYS.c.id == bindparam("key_id"))
_BY_DIGEST = select(*_COLUMNS).where(
    ((KEYS.c.hash == bindparam("digest")) & (KEYS.c.hash_scheme == key_hashes.SHA256))
    | (KEYS.c.previous_hash == bindparam("digest"))
)


async def _find(coord: Coordinator, raw: str, digest: str) -> Any:
    """The key's row: by SHA-256 (generated keys, their secret before the last rotation, and
    configured keys verified before), else by checking the configured (scrypt) keys one by one."""
    verified_id = coord.verified_keys.get(digest)
    async with coord.db.read_statement() as conn:
        if verified_id is not None:
            return (await conn.execute(_BY_ID, {"key_id": verified_id})).first()
        row = (await conn.execute(_BY_DIGEST, {"digest": digest})).first()
        if row is not None:
            return row
        candidates = (
            await conn.execute(
                select(KEYS.c.id, KEYS.c.salt, KEYS.c.hash).where(
                    KEYS.c.hash_scheme == key_hashes.SCRYPT, KEYS.c.revoked_at.is_(None)
                )
            )
        ).all()
    for candidate in candidates:
        if await key_hashes.scrypt_matches(raw, candidate.salt, candidate.hash):
            coord.verified_keys[digest] = candidate.id
            async with coord.db.read() as conn:
                return (await conn.execute(select(*_COLUMNS).where(KEYS.c.id == candidate.id))).first()
    return None
