"""Accounts: creation (for seed-demo and admin tooling) and login checks.

``authenticate`` is synchronous (Argon2 and the database): run it in a worker thread.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid
from collections.abc import Iterable
from typing import Any

from propdev.security.blind_index import phone_index
from propdev.security.crypto import Vault, vault_of
from propdev.security.errors import LoginFailedError
from propdev.security.passwords import hash_password, verify_password
from propdev.security.person_keys import person_key
from propdev.security.personal import USER_KEY, open_user_field, seal_user_fields
from propdev.security.recovery import use_recovery_code
from propdev.security.totp import claim_step, matching_step
from propdev.storage import Database, Row

ROLES = frozenset({"resident", "operator", "admin", "auditor", "partner", "guest"})


@dataclasses.dataclass(frozen=True, slots=True)
class User:
    """An account, without its secrets."""

    id: str
    username: str
    roles: tuple[str, ...]
    full_name: str = ""
    phone: str = ""
    has_totp: bool = False

    @classmethod
    def from_row(cls, row: Row, vault: Vault) -> User:
        """The user of a ``users`` row, its sealed columns opened with ``vault``."""
        return cls(
            id=row["id"],
            username=row["username"],
            roles=tuple(r for r in row["roles"].split(",") if r),
            full_name=open_user_field(vault, row, "full_name"),
            phone=open_user_field(vault, row, "phone"),
            has_totp=bool(row["totp_secret"]),
        )


@dataclasses.dataclass(frozen=True, slots=True)
class Login:
    """A user who has just proved who they are: ``amr`` says how (RFC 8176)."""

    user: User
    amr: tuple[str, ...]
    auth_time: float
    grant: str | None = None  # the refresh family a code or refresh token continues (``sid``)

    @property
    def id(self) -> str:  # authlib reads ``user.id`` in places
        return self.user.id


def user_claims(user: User, scope: str) -> dict[str, Any]:
    """The identity claims a token with ``scope`` may see (ID token, userinfo)."""
    scopes = set(scope.split())
    claims: dict[str, Any] = {"preferred_username": user.username, "roles": list(user.roles)}
    if "profile" in scopes:
        claims["name"] = user.full_name
    if "phone" in scopes:
        claims["phone_number"] = user.phone
    return claims


def normalize_username(username: str) -> str:
    return username.strip().lower()


async def create_user(
    db: Database,
    *,
    username: str,
    password: str,
    roles: Iterable[str],
    full_name: str = "",
    phone: str = "",
    totp_secret: str | None = None,
    user_id: str | None = None,
) -> str:
    """Create an account and return its id.

    Idempotent by username: when the username exists, its id is returned and nothing is
    changed (not the password, not the roles). Use ``set_password`` to reset a password.
    """
    roles = tuple(roles)
    unknown = set(roles) - ROLES
    if unknown or not roles:
        raise ValueError(f"roles must be a non-empty subset of {sorted(ROLES)}: {roles}")
    name = normalize_username(username)
    if not name:
        raise ValueError("empty username")
    existing = await db.fetch_one("SELECT id FROM users WHERE username = :u", u=name)
    if existing is not None:
        return str(existing["id"])
    password_hash = await asyncio.to_thread(hash_password, password)
    new_id = user_id or str(uuid.uuid4())
    vault = vault_of(db)
    key = await person_key(db, vault, new_id)
    sealed = seal_user_fields(
        vault, new_id, key, full_name=full_name, phone=phone, totp_secret=totp_secret
    )
    await db.execute(
        "INSERT INTO users (id, username, password_hash, roles, full_name, phone, phone_index,"
        " totp_secret, created_at) VALUES (:id, :u, :h, :roles, :full_name, :phone, :pidx,"
        " :totp, :now) ON CONFLICT (username) DO NOTHING",
        id=new_id,
        u=name,
        h=password_hash,
        roles=",".join(roles),
        full_name=sealed["full_name"],
        phone=sealed["phone"],
        pidx=sealed["phone_index"],
        totp=sealed["totp_secret"],
        now=time.time(),
    )
    row = await db.fetch_one("SELECT id FROM users WHERE username = :u", u=name)
    assert row is not None
    return str(row["id"])


async def set_password(db: Database, user_id: str, password: str) -> None:
    """Replace a user's password."""
    password_hash = await asyncio.to_thread(hash_password, password)
    await db.execute(
        "UPDATE users SET password_hash = :h WHERE id = :id", h=password_hash, id=user_id
    )


async def set_totp_secret(db: Database, user_id: str, secret: str | None) -> None:
    """Replace a user's TOTP seed (stored sealed)."""
    vault = vault_of(db)
    sealed = seal_user_fields(
        vault, user_id, await person_key(db, vault, user_id), totp_secret=secret
    )
    await db.execute(
        "UPDATE users SET totp_secret = :s WHERE id = :id", s=sealed["totp_secret"], id=user_id
    )


async def find_user_by_phone(db: Database, phone: str) -> User | None:
    """The account with this phone, found by its blind index (any spelling of the number)."""
    vault = vault_of(db)
    row = await db.fetch_one(
        f"SELECT users.*, {USER_KEY} FROM users WHERE phone_index = :i", i=phone_index(vault, phone)
    )
    return User.from_row(row, vault) if row is not None else None


async def get_user(db: Database, user_id: str) -> User | None:
    row = await db.lookup(f"SELECT users.*, {USER_KEY} FROM users WHERE id = :id", id=user_id)
    return User.from_row(row, vault_of(db)) if row is not None else None


def load_user(db: Database, user_id: str) -> User | None:
    """Sync twin of ``get_user``, for worker threads."""
    row = db.sync_fetch_one(f"SELECT users.*, {USER_KEY} FROM users WHERE id = :id", id=user_id)
    return User.from_row(row, vault_of(db)) if row is not None else None


def _bad_password(stored_hash: str | None) -> str:
    """Why a password did not verify: ``disabled`` when the account can have none (a
    moved-out resident's is a marker, not an Argon2 hash), else ``bad_password``."""
    return "disabled" if stored_hash is not None and stored_hash.startswith("!") else "bad_password"


def authenticate(
    db: Database,
    username: str,
    password: str,
    otp: str,
    *,
    now: float,
) -> Login:
    """Check a password and, for accounts with a TOTP secret, the one-time code: a TOTP code
    (``amr`` ``pwd otp``) or one of the account's recovery codes (``pwd mfa``).

    Raises ``LoginFailedError`` with the same message whatever was wrong. Sync: run in a
    worker thread. Throttling is the caller's (``OAuthServer.login``).
    """
    name = normalize_username(username)
    row = (
        db.sync_fetch_one(f"SELECT users.*, {USER_KEY} FROM users WHERE username = :u", u=name)
        if name
        else None
    )
    stored_hash = row["password_hash"] if row else None
    password_ok = verify_password(stored_hash, password)
    amr: tuple[str, ...] = ("pwd",)
    why = "unknown_user" if row is None else "" if password_ok else _bad_password(stored_hash)
    if row is not None and password_ok and row["totp_secret"]:
        secret = open_user_field(vault_of(db), row, "totp_secret")
        step = matching_step(secret, otp, now)
        if step is not None and claim_step(db, row["id"], step):
            amr = ("pwd", "otp")
        elif step is None and use_recovery_code(db, row["id"], otp, now=now):
            amr = ("pwd", "mfa")  # RFC 8176 names no method for recovery codes
        else:
            password_ok = False
            why = "bad_otp"
    if row is None or not password_ok:
        raise LoginFailedError(reason=why, user_id=None if row is None else str(row["id"]))
    return Login(User.from_row(row, vault_of(db)), amr, now)
