"""Dashboard sign-in: a random token in an httpOnly cookie, its SHA-256 in ``dashboard_sessions``.

The key a visitor signed in with is re-read on every request (revoked, expired or rotated out:
signed out), and its secret is never stored or shown: the session row names the key by id.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass

from sqlalchemy import delete, select, update

from taskpost.protocol import DEFAULT_NAMESPACE, Role
from taskpost.server.coordinator import Coordinator
from taskpost.server.db.models import DashboardSession
from taskpost.server.services import key_hashes
from taskpost.server.services.keys import KEYS, namespaces_of
from taskpost.server.services.principals import Principal

SESSIONS = DashboardSession.__table__  # type: ignore[attr-defined]
SESSION_COOKIE = "taskpost_session"
LOGIN_COOKIE = "taskpost_login"
"""The sign-in form's double-submit CSRF token, set before there is a session."""
DASHBOARD_ROLES = frozenset({Role.ADMIN, Role.CLIENT})
# last_seen_at is informative: written at most once a minute per session.
_SEEN_PRECISION_S = 60.0


@dataclass(frozen=True)
class Visitor:
    """A signed-in visitor on one request."""

    session_id: str
    csrf: str
    principal: Principal

    @property
    def scope(self) -> str | None:
        """The namespace whose jobs it sees; None: every one (an admin key)."""
        if self.principal.role is Role.ADMIN:
            return None
        return self.principal.namespaces[0] if self.principal.namespaces else DEFAULT_NAMESPACE

    @property
    def is_admin(self) -> bool:
        return self.principal.role is Role.ADMIN

    def csrf_ok(self, sent: str | None) -> bool:
        return tokens_match(self.csrf, sent)


def tokens_match(expected: str, sent: str | None) -> bool:
    return bool(sent) and hmac.compare_digest(expected.encode(), (sent or "").encode())


def new_token() -> str:
    return secrets.token_urlsafe(32)


async def create(coord: Coordinator, principal: Principal) -> str:
    """Store a session for ``principal``; returns the cookie's token (only its hash is stored)."""
    token = new_token()
    now = coord.clock()
    async with coord.db.write() as conn:
        await conn.execute(
            SESSIONS.insert().values(
                id=key_hashes.sha256_hex(token),
                key_id=principal.key_id,
                csrf=new_token(),
                created_at=now,
                expires_at=now + coord.settings.dashboard_session_s,
                last_seen_at=now,
            )
        )
    return token


async def visitor(coord: Coordinator, token: str | None) -> Visitor | None:
    """The visitor the cookie's ``token`` stands for, or None (no, unknown or expired session, or
    a key that is revoked, expired or no longer of a dashboard role)."""
    if not token:
        return None
    session_id = key_hashes.sha256_hex(token)
    now = coord.clock()
    async with coord.db.read() as conn:
        row = (
            await conn.execute(
                select(
                    SESSIONS.c.csrf,
                    SESSIONS.c.last_seen_at,
                    KEYS.c.id,
                    KEYS.c.role,
                    KEYS.c.namespaces,
                    KEYS.c.revoked_at,
                    KEYS.c.expires_at,
                )
                .join(KEYS, KEYS.c.id == SESSIONS.c.key_id)
                .where(SESSIONS.c.id == session_id, SESSIONS.c.expires_at > now)
            )
        ).first()
    if row is None or row.revoked_at is not None:
        return None
    if row.expires_at is not None and row.expires_at <= now:
        return None
    role = Role(row.role)
    if role not in DASHBOARD_ROLES:
        return None
    if now - row.last_seen_at > _SEEN_PRECISION_S:
        async with coord.db.write() as conn:
            await conn.execute(update(SESSIONS).where(SESSIONS.c.id == session_id).values(last_seen_at=now))
    principal = Principal(key_id=row.id, role=role, namespaces=namespaces_of(role, row.namespaces))
    return Visitor(session_id, row.csrf, principal)


async def end(coord: Coordinator, session_id: str) -> None:
    async with coord.db.write() as conn:
        await conn.execute(delete(SESSIONS).where(SESSIONS.c.id == session_id))


def namespaces_text(principal: Principal) -> str:
    """What the page header shows about the visitor: a role and namespace, nothing of the key."""
    if principal.role is Role.ADMIN:
        return "admin (every namespace)"
    return f"client · namespace {principal.namespaces[0] if principal.namespaces else DEFAULT_NAMESPACE}"
