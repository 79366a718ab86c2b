"""Who is calling: a raw API key to a ``Principal``, read from the database on every request."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update

from taskpost.protocol import Role
from taskpost.server.coordinator import Coordinator
from taskpost.server.errors import NotAuthenticated
from taskpost.server.services import key_hashes
from taskpost.server.services.keys import KEYS, namespaces_of

# last_used_at is informative; writing it on every request would double the writes.
_LAST_USED_PRECISION_S = 60.0
_COLUMNS = (KEYS.c.id, KEYS.c.prefix, KEYS.c.role, KEYS.c.namespaces, KEYS.c.revoked_at, KEYS.c.last_used_at)


@dataclass(frozen=True)
class Principal:
    """Who is calling, as the key says on this request."""

    key_id: str
    role: Role
    namespaces: tuple[str, ...] = ()
    """client: its one namespace; worker: those it may claim from (empty: all); admin: empty."""


class AuthenticationFailed(NotAuthenticated):
    """NotAuthenticated with a reason for the log: it never holds the key."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


async def authenticate(coord: Coordinator, raw: str | None) -> Principal:
    if not raw:
        raise AuthenticationFailed(NotAuthenticated.__doc__ or "", "no key")
    row = await _find(coord, raw)
    if row is None:
        raise AuthenticationFailed(
            "unknown API key: check the key, or create one with 'taskpost keys create'", "unknown key"
        )
    if row.revoked_at is not None:
        raise AuthenticationFailed("this API key was revoked", f"revoked key {row.prefix}")
    now = coord.clock()
    if row.last_used_at is None or now - row.last_used_at > _LAST_USED_PRECISION_S:
        async with coord.db.write() as conn:
            await conn.execute(update(KEYS).where(KEYS.c.id == row.id).values(last_used_at=now))
    role = Role(row.role)
    return Principal(key_id=row.id, role=role, namespaces=namespaces_of(role, row.namespaces))


async def _find(coord: Coordinator, raw: str) -> Any:
    """The key's row: by SHA-256 (generated keys, and configured keys verified before), else by
    checking the configured (scrypt) keys one by one."""
    digest = key_hashes.sha256_hex(raw)
    verified_id = coord.verified_keys.get(digest)
    async with coord.db.read() as conn:
        if verified_id is not None:
            return (await conn.execute(select(*_COLUMNS).where(KEYS.c.id == verified_id))).first()
        row = (
            await conn.execute(
                select(*_COLUMNS).where(KEYS.c.hash == digest, KEYS.c.hash_scheme == key_hashes.SHA256)
            )
        ).first()
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
