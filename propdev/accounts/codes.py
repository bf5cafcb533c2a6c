"""One-time codes in ``account_codes``: password reset and activation.

A code is drawn from ``secrets`` and stored only as a keyed hash (HMAC-SHA256 under the
vault's index key, bound to the account and the purpose), as recovery codes are
(``propdev.security.recovery``). One live code per account and purpose: issuing a code
retires the ones before it. A code works once (a conditional ``UPDATE``), until it expires,
and dies after ``MAX_ATTEMPTS`` wrong guesses.

- password reset: 8 digits, easy to type from an SMS; short-lived (``PROPDEV_RESET_CODE_TTL``).
- activation: ``xxxx-xxxx-xxxx`` in Crockford's base32 (60 bits), handed to the resident
  with the invitation (``PROPDEV_ACTIVATION_CODE_TTL``).
"""

from __future__ import annotations

import secrets
import uuid
from typing import Any

from propdev.security import vault_of
from propdev.storage import Database

RESET, ACTIVATION = "reset", "activation"
MAX_ATTEMPTS = 5
RESET_DIGITS = 8
GROUPS, GROUP = 3, 4
ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # Crockford's base32, lower case
_LOOKALIKES = str.maketrans({"i": "1", "l": "1", "o": "0", "u": "v"})

RETIRE = (
    "UPDATE account_codes SET used_at = :now"
    " WHERE user_id = :user_id AND purpose = :purpose AND used_at IS NULL"
)
INSERT = (
    "INSERT INTO account_codes (id, user_id, purpose, code_hash, created_at, expires_at)"
    " VALUES (:id, :user_id, :purpose, :code_hash, :now, :expires_at)"
)
LIVE = (
    "SELECT id, code_hash FROM account_codes WHERE user_id = :user_id AND purpose = :purpose"
    " AND used_at IS NULL AND expires_at > :now AND attempts < :max ORDER BY created_at DESC"
)
MISSED = "UPDATE account_codes SET attempts = attempts + 1 WHERE id = :id"
CLAIM = (
    "UPDATE account_codes SET used_at = :now WHERE id = :id AND used_at IS NULL"
    " AND expires_at > :now AND attempts < :max RETURNING id"
)


def new_code(purpose: str) -> str:
    """A fresh code for ``purpose``, as it is shown to the person."""
    if purpose == RESET:
        return "".join(secrets.choice("0123456789") for _ in range(RESET_DIGITS))
    return "-".join("".join(secrets.choice(ALPHABET) for _ in range(GROUP)) for _ in range(GROUPS))


def normalize(purpose: str, code: str) -> str | None:
    """The code as it was drawn (spaces, dashes, case and look-alikes forgiven), or None
    when ``code`` cannot be one of ``purpose``."""
    text = "".join(code.lower().split()).replace("-", "")
    if purpose == RESET:
        ok = len(text) == RESET_DIGITS and text.isascii() and text.isdigit()
        return text if ok else None
    text = text.translate(_LOOKALIKES)
    if len(text) != GROUPS * GROUP or any(c not in ALPHABET for c in text):
        return None
    return text


def code_hash(db: Database, user_id: str, purpose: str, code: str) -> str | None:
    """The stored form of ``code`` (None when it cannot be a code of ``purpose``)."""
    normalized = normalize(purpose, code)
    if normalized is None:
        return None
    return vault_of(db).blind_index(
        f"{user_id}|{purpose}|{normalized}", table="account_codes", column="code_hash"
    )


def issue(
    db: Database, user_id: str, purpose: str, *, ttl: float, now: float
) -> tuple[str, list[tuple[str, dict[str, Any]]]]:
    """A new code for the account and the statements that store it (``RETIRE`` the live one,
    ``INSERT`` this one), for the caller to run in its transaction."""
    code = new_code(purpose)
    hashed = code_hash(db, user_id, purpose, code)
    assert hashed is not None
    who = {"user_id": user_id, "purpose": purpose, "now": now}
    insert = {**who, "id": str(uuid.uuid4()), "code_hash": hashed, "expires_at": now + ttl}
    return code, [(RETIRE, who), (INSERT, insert)]
