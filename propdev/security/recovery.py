"""Recovery codes: ten one-time codes that stand in for a lost TOTP authenticator.

A code is ``xxxxx-xxxxx`` in Crockford's base32 (50 bits from ``secrets``); it is shown once
(``run.py totp recovery-codes USERNAME``) and only its hash is stored, in
``user_recovery_codes``. At the login form it goes in the ``otp`` field of an account with
2FA; it works once and the token's ``amr`` is ``["pwd", "mfa"]`` (RFC 8176 has no value for
recovery codes).

Hash: HMAC-SHA256 under the vault's index key (``Vault.blind_index``), bound to the user id,
not Argon2. The codes carry 50 random bits, so the slow hash that protects low-entropy
passwords buys nothing against a database thief who does not hold the key (kept outside the
database, wrapped by the master key) and nothing at all against one who does; a keyed hash
can be looked up (``WHERE code_hash = …``), which makes the single use one conditional
``UPDATE``, and costs microseconds instead of ten Argon2 runs per login attempt.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Sequence
from typing import NamedTuple

import sqlalchemy as sa
import structlog

from propdev.security.crypto import vault_of
from propdev.storage import Database

log = structlog.get_logger()

COUNT = 10
LOW = 3  # at or below this many unused codes, the console asks for a new set
GROUP = 5  # symbols per half: 2 halves of 5 symbols of 5 bits = 50 bits
ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # Crockford's base32, lower case
# What people type for the letters Crockford leaves out.
_LOOKALIKES = str.maketrans({"i": "1", "l": "1", "o": "0", "u": "v"})


def new_recovery_codes(count: int = COUNT) -> list[str]:
    """``count`` fresh codes, ``xxxxx-xxxxx``, from the OS CSPRNG."""
    return [
        "-".join("".join(secrets.choice(ALPHABET) for _ in range(GROUP)) for _ in range(2))
        for _ in range(count)
    ]


def normalize_code(code: str) -> str | None:
    """The code's ten symbols (case, spaces, dashes and look-alikes forgiven), or None when
    ``code`` cannot be a recovery code (a 6-digit TOTP code, say)."""
    text = "".join(code.lower().split()).replace("-", "").translate(_LOOKALIKES)
    if len(text) != 2 * GROUP or any(c not in ALPHABET for c in text):
        return None
    return text


def code_hash(db: Database, user_id: str, normalized: str) -> str:
    """HMAC-SHA256 of ``user_id|code`` under this database's index key."""
    return vault_of(db).blind_index(
        f"{user_id}|{normalized}", table="user_recovery_codes", column="code_hash"
    )


async def store_recovery_codes(db: Database, user_id: str, codes: Sequence[str]) -> None:
    """Make ``codes`` the user's recovery codes: every other code of the user is dropped, and
    a code stored already keeps its state (so storing the same set again changes nothing)."""
    hashes = []
    for code in codes:
        normalized = normalize_code(code)
        if normalized is None:
            raise ValueError("not a recovery code")
        hashes.append(code_hash(db, user_id, normalized))
    now = time.time()
    async with db.transaction() as conn:
        keep = {f"h{i}": h for i, h in enumerate(hashes)}
        in_list = ", ".join(f":{k}" for k in keep) or "NULL"
        await conn.execute(
            sa.text(
                # Only bind parameter names are formatted in, never values.
                "DELETE FROM user_recovery_codes WHERE user_id = :user_id"
                f" AND code_hash NOT IN ({in_list})"
            ),
            {"user_id": user_id, **keep},
        )
        for h in hashes:
            await conn.execute(
                sa.text(
                    "INSERT INTO user_recovery_codes (user_id, code_hash, created_at)"
                    " VALUES (:user_id, :h, :now) ON CONFLICT (user_id, code_hash) DO NOTHING"
                ),
                {"user_id": user_id, "h": h, "now": now},
            )


class RecoveryCodes(NamedTuple):
    """How many recovery codes a user was given (the current set) and how many are unused."""

    remaining: int
    issued: int

    @property
    def low(self) -> bool:
        """Few or none left: time for ``run.py totp recovery-codes`` (a new set)."""
        return self.remaining <= LOW


async def recovery_codes_status(db: Database, user_id: str) -> RecoveryCodes:
    """The user's recovery codes, counted (the codes themselves are never readable)."""
    row = await db.fetch_one(
        "SELECT COUNT(*) AS issued,"
        " COALESCE(SUM(CASE WHEN used_at IS NULL THEN 1 ELSE 0 END), 0) AS remaining"
        " FROM user_recovery_codes WHERE user_id = :u",
        u=user_id,
    )
    if row is None:
        return RecoveryCodes(0, 0)
    return RecoveryCodes(int(row["remaining"]), int(row["issued"]))


async def remaining_recovery_codes(db: Database, user_id: str) -> int:
    """How many of the user's recovery codes are still unused."""
    return (await recovery_codes_status(db, user_id)).remaining


def use_recovery_code(db: Database, user_id: str, code: str, *, now: float) -> bool:
    """Spend one of the user's recovery codes; False when ``code`` is none of them or was
    used already.

    One conditional ``UPDATE … WHERE used_at IS NULL``: of two logins racing with the same
    code, on any node, exactly one sees a changed row. Sync: call from a worker thread.
    """
    normalized = normalize_code(code)
    if normalized is None:
        return False
    hashed = code_hash(db, user_id, normalized)
    with db.sync_transaction() as conn:
        used = conn.execute(
            sa.text(
                "UPDATE user_recovery_codes SET used_at = :now"
                " WHERE user_id = :user_id AND code_hash = :h AND used_at IS NULL"
            ),
            {"now": now, "user_id": user_id, "h": hashed},
        )
        if used.rowcount != 1:
            return False
        left = conn.execute(
            sa.text(
                "SELECT COUNT(*) FROM user_recovery_codes"
                " WHERE user_id = :user_id AND used_at IS NULL"
            ),
            {"user_id": user_id},
        ).scalar_one()
    log.warning("recovery_code_used", user_id=user_id, remaining=int(left))
    return True
