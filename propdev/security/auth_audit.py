"""Audit entries of sign-in and tokens (the vocabulary is docs/audit.md).

- ``auth.login``: the sign-in form (password and second factor) and the ``refresh_token``
  grant, ``granted`` or ``denied``. Granted, ``reason`` says how (``password``,
  ``password+otp``, ``password+recovery_code``, ``refresh_token``); denied, why
  (``unknown_user``, ``bad_password``, ``bad_otp``, ``disabled``, ``throttled:account``,
  ``throttled:address``, ``refresh_invalid``, ``refresh_bad_client``, ``refresh_<error>``).
- ``auth.refresh_reuse`` / ``auth.code_replay``: a spent refresh token or authorization code
  presented again; its whole family was revoked (``denied``).
- ``auth.revoke``: a token revoked at ``/oauth/revoke`` (``access_token`` or
  ``refresh_token``); a move-out's revocation is written by ``propdev.management``.
- ``auth.recovery_codes``: a new set of TOTP recovery codes (never the codes).

The actor is the person (``operator:<id>`` for staff, ``user:<id>`` otherwise), or
``anonymous`` when no account is known (an unknown username, an unknown refresh token); the
subject is the account's id. The attempted username, the client id and the source address go
into ``personal`` only, never the password, a code or a token. Each entry is appended before
the answer is given: a store that cannot take it fails the request.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from propdev.security.audit_personal import sealed_record
from propdev.security.crypto import vault_of
from propdev.storage import Database
from propdev.storage.audit import AuditLog, AuditRecord

LOGIN = "auth.login"
REFRESH_REUSE = "auth.refresh_reuse"
CODE_REPLAY = "auth.code_replay"
REVOKE = "auth.revoke"
RECOVERY_CODES = "auth.recovery_codes"

ANONYMOUS = "anonymous"
MAX_USERNAME = 200
STAFF_ROLES = frozenset({"operator", "admin", "auditor"})

# A granted sign-in's reason, by its ``amr`` (RFC 8176; ``mfa`` is a recovery code here).
_HOW = {
    ("pwd",): "password",
    ("pwd", "otp"): "password+otp",
    ("pwd", "mfa"): "password+recovery_code",
}


def person(user_id: str, roles: Iterable[str]) -> str:
    """The audit actor of an account: ``operator:<id>`` for staff, ``user:<id>`` otherwise."""
    return f"operator:{user_id}" if STAFF_ROLES & set(roles) else f"user:{user_id}"


def sign_in_method(amr: Iterable[str]) -> str:
    amr = tuple(amr)
    return _HOW.get(amr, "+".join(amr))


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a request came from: the OAuth client and the source address (both kept in the
    entry's ``personal`` fields, with the attempted username when there is one)."""

    client_id: str | None = None
    address: str | None = None

    def personal(self, username: str | None = None) -> dict[str, str]:
        """The personal fields: the username as typed (its first ``MAX_USERNAME`` characters:
        a form may carry kilobytes), the client id and the address."""
        typed = None if username is None else username[:MAX_USERNAME]
        fields = {"username": typed, "client_id": self.client_id, "address": self.address}
        return {k: v for k, v in fields.items() if v}


class AuthAudit:
    """Writes the entries of one authorization server (or CLI command) to the audit chain."""

    def __init__(self, db: Database, *, clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self.log = AuditLog(db)
        self.clock = clock

    async def append(
        self,
        action: str,
        *,
        decision: str,
        reason: str,
        origin: Origin,
        actor: str = ANONYMOUS,
        subject: str | None = None,
        username: str | None = None,
    ) -> None:
        record = AuditRecord(
            at=self.clock(),
            actor=actor,
            action=action,
            access_point_id=None,
            decision=decision,
            reason=reason,
            subject=subject,
            personal=origin.personal(username) or None,
        )
        if record.personal:  # sealed (hash format 4): erasure shreds it with the subject
            record = await sealed_record(self.db, vault_of(self.db), record)
        await self.log.append(record)

    async def actor_of(self, user_id: str) -> str:
        """The actor of an account known only by id (its roles read from the store)."""
        row = await self.db.fetch_one("SELECT roles FROM users WHERE id = :id", id=user_id)
        roles = str(row["roles"]).split(",") if row is not None else ()
        return person(user_id, roles)
