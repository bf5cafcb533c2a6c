"""TOTP second factor (RFC 6238: 30 s step, 6 digits, SHA-1) with a replay guard.

A code is accepted for the current step and one step either side. The last accepted step is
stored per user in the database (shared by all nodes), and a code from that step or an
earlier one is refused: each code works once.
"""

from __future__ import annotations

import hmac
from typing import Any

import pyotp
import sqlalchemy as sa

from propdev.storage import Database

STEP = 30
DIGITS = 6
WINDOW = 1


def new_totp_secret() -> str:
    """A fresh base32 seed of 160 bits from the OS CSPRNG."""
    return pyotp.random_base32(32)


def provisioning_uri(secret: str, username: str, issuer: str = "propdev") -> str:
    """``otpauth://`` URI for authenticator apps."""
    return pyotp.TOTP(secret).provisioning_uri(name=username, issuer_name=issuer)


def current_code(secret: str, now: float) -> str:
    """The code for ``now`` (tests and demo tooling)."""
    return pyotp.TOTP(secret).at(int(now))


def matching_step(secret: str, code: str, now: float, window: int = WINDOW) -> int | None:
    """Return the time step whose code equals ``code``, or None. Server time only."""
    code = code.strip()
    if len(code) != DIGITS or not code.isdigit():
        return None
    totp = pyotp.TOTP(secret, digits=DIGITS, interval=STEP)
    now_step = int(now) // STEP
    found = None
    for step in range(now_step - window, now_step + window + 1):
        # Compare every candidate, so timing does not tell which step matched.
        if hmac.compare_digest(totp.generate_otp(step), code):
            found = step
    return found


def claim_step(db: Database, user_id: str, step: int) -> bool:
    """Record ``step`` as used by ``user_id``; False when it (or a later one) was used already.

    Sync: call from a worker thread. Atomic on SQLite and PostgreSQL.
    """
    with db.sync_transaction() as conn:
        updated = _rowcount(
            conn,
            "UPDATE user_totp_steps SET last_step = :step "
            "WHERE user_id = :user_id AND last_step < :step",
            user_id=user_id,
            step=step,
        )
        if updated:
            return True
        inserted = _rowcount(
            conn,
            "INSERT INTO user_totp_steps (user_id, last_step) VALUES (:user_id, :step) "
            "ON CONFLICT (user_id) DO NOTHING",
            user_id=user_id,
            step=step,
        )
        return inserted == 1


def _rowcount(conn: Any, sql: str, **params: Any) -> int:
    return int(conn.execute(sa.text(sql), params).rowcount)
