"""How API keys are kept: SHA-256 for generated keys, salted scrypt for configured ones.

A generated key is 256 random bits: no guess list can reach it, so one fast SHA-256 is enough
and lets every request find its key with one indexed lookup. A configured key
(``TASKPOST_ADMIN_KEY``) is chosen by a person and may be guessable; it is kept as a salted
scrypt hash, so that a copy of the database does not let it be brute-forced cheaply.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets

SHA256 = "sha256"
SCRYPT = "scrypt"

# RFC 7914's interactive parameters: 16 MiB and a few tens of milliseconds per hash.
_SCRYPT_N = 2**14
_SCRYPT_R = 8
_SCRYPT_P = 1
_SCRYPT_BYTES = 32
_SALT_BYTES = 16


def sha256_hex(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def _scrypt(raw: str, salt_hex: str) -> str:
    derived = hashlib.scrypt(
        raw.encode(),
        salt=bytes.fromhex(salt_hex),
        n=_SCRYPT_N,
        r=_SCRYPT_R,
        p=_SCRYPT_P,
        dklen=_SCRYPT_BYTES,
    )
    return derived.hex()


async def scrypt_new(raw: str) -> tuple[str, str]:
    """A fresh salt and the scrypt hash of ``raw`` with it (hex), computed off the event loop."""
    salt = secrets.token_hex(_SALT_BYTES)
    return salt, await asyncio.to_thread(_scrypt, raw, salt)


async def scrypt_matches(raw: str, salt_hex: str, expected_hex: str) -> bool:
    actual = await asyncio.to_thread(_scrypt, raw, salt_hex)
    return hmac.compare_digest(actual, expected_hex)
