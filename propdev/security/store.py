"""Authorization codes and refresh tokens in the database, stored as SHA-256 hashes.

Synchronous: authlib calls it from worker threads. Both kinds of secret are single use, and
the "use" is one conditional UPDATE, so two nodes (or two threads) racing for the same code
or refresh token cannot both win.

A refresh-token family starts at one authorization code (``family_id`` = the code's hash)
and continues through every rotation; a replayed code or a reused refresh token revokes it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
import structlog
from authlib.oauth2.rfc6749 import AuthorizationCodeMixin, TokenMixin

from propdev.storage import Database, Row

log = structlog.get_logger(__name__)

CODE_TTL = 60.0


def secret_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


@dataclasses.dataclass(frozen=True, slots=True)
class CodeRecord(AuthorizationCodeMixin):  # type: ignore[misc]  # authlib is untyped
    """A redeemed authorization code."""

    code_hash: str
    client_id: str
    user_id: str
    redirect_uri: str
    scope: str
    nonce: str | None
    code_challenge: str
    code_challenge_method: str
    amr: tuple[str, ...]
    auth_time: float

    @property
    def family_id(self) -> str:
        return self.code_hash

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope


@dataclasses.dataclass(frozen=True, slots=True)
class RefreshRecord(TokenMixin):  # type: ignore[misc]  # authlib is untyped
    """A stored refresh token (only its hash is kept)."""

    token_hash: str
    family_id: str
    client_id: str
    user_id: str
    scope: str
    amr: tuple[str, ...]
    issued_at: float
    expires_at: float
    rotated: bool
    revoked: bool

    @classmethod
    def from_row(cls, row: Row) -> RefreshRecord:
        return cls(
            token_hash=row["token_hash"],
            family_id=row["family_id"],
            client_id=row["client_id"],
            user_id=row["user_id"],
            scope=row["scope"],
            amr=tuple(json.loads(row["amr"])),
            issued_at=float(row["issued_at"]),
            expires_at=float(row["expires_at"]),
            rotated=bool(row["rotated"]),
            revoked=bool(row["revoked"]),
        )

    def check_client(self, client: Any) -> bool:
        return bool(self.client_id == client.get_client_id())

    def get_scope(self) -> str:
        return self.scope

    def get_expires_in(self) -> int:
        return int(self.expires_at - self.issued_at)

    def is_revoked(self) -> bool:
        return self.revoked

    def is_expired(self) -> bool:  # authlib does not call it; expiry is checked in the store
        return False


class OAuthStore:
    """Codes and refresh tokens of one database."""

    def __init__(self, db: Database, clock: Callable[[], float]) -> None:
        self.db = db
        self.clock = clock

    # -- authorization codes ------------------------------------------------------------

    def save_code(
        self,
        code: str,
        *,
        client_id: str,
        user_id: str,
        redirect_uri: str,
        scope: str,
        nonce: str | None,
        code_challenge: str,
        code_challenge_method: str,
        amr: tuple[str, ...],
        auth_time: float,
    ) -> None:
        self.db.sync_execute(
            "INSERT INTO oauth_codes (code_hash, client_id, user_id, redirect_uri, scope, nonce,"
            " code_challenge, code_challenge_method, amr, auth_time, expires_at)"
            " VALUES (:h, :client_id, :user_id, :redirect_uri, :scope, :nonce, :challenge,"
            " :method, :amr, :auth_time, :expires_at)",
            h=secret_hash(code),
            client_id=client_id,
            user_id=user_id,
            redirect_uri=redirect_uri,
            scope=scope,
            nonce=nonce,
            challenge=code_challenge,
            method=code_challenge_method,
            amr=json.dumps(list(amr)),
            auth_time=auth_time,
            expires_at=self.clock() + CODE_TTL,
        )

    def redeem_code(
        self,
        code: str,
        client_id: str,
        *,
        revoked: list[str] | None = None,
        replayed: list[str] | None = None,
    ) -> CodeRecord | None:
        """Mark the code used and return it; None if unknown, expired, or used before.

        A second redemption revokes every refresh token issued from the code, and appends the
        family to ``revoked``: the caller publishes it, so its access tokens are refused too;
        ``replayed`` gets the id of the user the code was issued to.
        """
        h = secret_hash(code)
        now = self.clock()
        with self.db.sync_transaction() as conn:
            claimed = conn.execute(
                sa.text(
                    "UPDATE oauth_codes SET used = TRUE WHERE code_hash = :h"
                    " AND client_id = :c AND used = FALSE AND expires_at > :now"
                ),
                {"h": h, "c": client_id, "now": now},
            ).rowcount
            row = (
                conn.execute(
                    sa.text("SELECT * FROM oauth_codes WHERE code_hash = :h AND client_id = :c"),
                    {"h": h, "c": client_id},
                )
                .mappings()
                .first()
            )
        if row is None:
            return None
        if not claimed:
            if row["used"]:
                log.warning("oauth_code_replayed", client_id=client_id, user_id=row["user_id"])
                self.revoke_family(h, revoked=revoked)
                if replayed is not None:  # whose code: for the audit (auth.code_replay)
                    replayed.append(str(row["user_id"]))
            return None
        return CodeRecord(
            code_hash=h,
            client_id=row["client_id"],
            user_id=row["user_id"],
            redirect_uri=row["redirect_uri"],
            scope=row["scope"],
            nonce=row["nonce"],
            code_challenge=row["code_challenge"],
            code_challenge_method=row["code_challenge_method"],
            amr=tuple(json.loads(row["amr"])),
            auth_time=float(row["auth_time"]),
        )

    def purge_codes(self, older_than: float) -> int:
        """Delete codes that expired before ``older_than`` (kept until then to spot replays)."""
        return self.db.sync_execute("DELETE FROM oauth_codes WHERE expires_at < :t", t=older_than)

    # -- refresh tokens -------------------------------------------------------------------

    def save_refresh_token(
        self,
        token: str,
        *,
        family_id: str,
        client_id: str,
        user_id: str,
        scope: str,
        amr: tuple[str, ...],
        expires_at: float,
    ) -> None:
        # Not into a family revoked meanwhile: a rotation racing a sign-out (a password change,
        # a session ended, a move-out) would otherwise leave its new token alive.
        self.db.sync_execute(
            "INSERT INTO oauth_refresh_tokens (token_hash, family_id, client_id, user_id, scope,"
            " amr, issued_at, expires_at) SELECT :h, :family, :client_id, :user_id, :scope,"
            " :amr, :now, :expires_at WHERE NOT EXISTS (SELECT 1 FROM oauth_refresh_tokens"
            " WHERE family_id = :family AND revoked = TRUE)",
            h=secret_hash(token),
            family=family_id,
            client_id=client_id,
            user_id=user_id,
            scope=scope,
            amr=json.dumps(list(amr)),
            now=self.clock(),
            expires_at=expires_at,
        )

    def find_refresh_token(self, token: str) -> RefreshRecord | None:
        row = self.db.sync_fetch_one(
            "SELECT * FROM oauth_refresh_tokens WHERE token_hash = :h", h=secret_hash(token)
        )
        return RefreshRecord.from_row(row) if row is not None else None

    def usable_refresh_token(
        self,
        token: str,
        *,
        revoked: list[str] | None = None,
        reused: list[RefreshRecord] | None = None,
    ) -> RefreshRecord | None:
        """The token if it may be exchanged now; a spent one revokes its family (appended to
        ``revoked``, the spent token to ``reused``)."""
        record = self.find_refresh_token(token)
        if record is None or record.revoked:
            return None
        if record.rotated:
            log.warning(
                "oauth_refresh_token_reused", client_id=record.client_id, user_id=record.user_id
            )
            self.revoke_family(record.family_id, revoked=revoked)
            if reused is not None:
                reused.append(record)
            return None
        if record.expires_at <= self.clock():
            return None
        return record

    def spend_refresh_token(self, record: RefreshRecord) -> bool:
        """Mark the token rotated; False when someone else spent it first."""
        return (
            self.db.sync_execute(
                "UPDATE oauth_refresh_tokens SET rotated = TRUE"
                " WHERE token_hash = :h AND rotated = FALSE AND revoked = FALSE",
                h=record.token_hash,
            )
            == 1
        )

    def revoke_family(self, family_id: str, *, revoked: list[str] | None = None) -> int:
        """Revoke every refresh token of the family; ``revoked`` gets ``family_id``."""
        if revoked is not None and family_id not in revoked:
            revoked.append(family_id)
        return self.db.sync_execute(
            "UPDATE oauth_refresh_tokens SET revoked = TRUE WHERE family_id = :f", f=family_id
        )
