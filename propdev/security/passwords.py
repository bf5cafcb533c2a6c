"""Password hashing with Argon2id.

Hashing and verification are CPU and memory heavy (tens of milliseconds): callers on the
event loop run them with ``asyncio.to_thread``.
"""

from __future__ import annotations

import functools

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

# RFC 9106 second recommended option (64 MiB, t=3, p=4): argon2-cffi's default profile.
_HASHER = PasswordHasher()


@functools.cache
def _dummy_hash() -> str:
    """Verified against when the user does not exist, so that a wrong username costs as much
    time as a wrong password. Made on first use, not at import: one Argon2 hash is a tenth of
    a node's start."""
    return _HASHER.hash("propdev-dummy-password-for-timing")


def hash_password(password: str) -> str:
    """Return an Argon2id hash string (PHC format, salt included)."""
    return _HASHER.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """Return True when ``password`` matches ``password_hash``.

    ``password_hash=None`` (unknown user) still spends the time of one verification.
    """
    try:
        return _HASHER.verify(password_hash or _dummy_hash(), password) and bool(password_hash)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    """Return True when the hash was made with weaker parameters than the current ones."""
    try:
        return _HASHER.check_needs_rehash(password_hash)
    except InvalidHashError:
        return True
