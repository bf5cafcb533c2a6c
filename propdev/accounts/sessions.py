"""A person's sessions: one per refresh-token family (one sign-in and its rotations).

A family starts at one authorization code; its id is the code's hash, the ``sid`` claim of
every access token issued under it (``propdev.security.grants``). A session is listed while
its family holds a refresh token that may still be exchanged (not rotated, not revoked, not
expired). ``created_at`` is when its first refresh token was issued (the sign-in),
``last_used_at`` when its newest one was (the last sign-in or refresh): the store records each
exchange, so no write per API request is needed to know it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from propdev.storage import Row, UnitConnection

LIST = (
    "SELECT family_id, MIN(client_id) AS client_id, MIN(issued_at) AS created_at,"
    " MAX(issued_at) AS last_used_at FROM oauth_refresh_tokens WHERE user_id = :user_id"
    " GROUP BY family_id HAVING SUM(CASE WHEN rotated = FALSE AND revoked = FALSE"
    " AND expires_at > :now THEN 1 ELSE 0 END) > 0 ORDER BY MAX(issued_at) DESC, family_id"
)
OWNED = (
    "SELECT 1 AS x FROM oauth_refresh_tokens WHERE family_id = :family_id AND user_id = :user_id"
)
REVOKE_ONE = (
    "UPDATE oauth_refresh_tokens SET revoked = TRUE WHERE family_id = :family_id"
    " AND user_id = :user_id AND revoked = FALSE RETURNING family_id"
)
REVOKE_ALL = (
    "UPDATE oauth_refresh_tokens SET revoked = TRUE WHERE user_id = :user_id"
    " AND revoked = FALSE RETURNING family_id"
)
SPEND_CODES = "UPDATE oauth_codes SET used = TRUE WHERE user_id = :user_id AND used = FALSE"


@dataclass(frozen=True, slots=True)
class Session:
    id: str
    client_id: str
    created_at: float
    last_used_at: float

    @classmethod
    def from_row(cls, row: Row) -> Session:
        return cls(
            id=str(row["family_id"]),
            client_id=str(row["client_id"]),
            created_at=float(row["created_at"]),
            last_used_at=float(row["last_used_at"]),
        )

    def to_json(self, current_sid: str | None) -> dict[str, Any]:
        return {
            "id": self.id,
            "client_id": self.client_id,
            "created_at": self.created_at,
            "last_used_at": self.last_used_at,
            "current": self.id == current_sid,
        }


def _families(rows: list[Row]) -> list[str]:
    return sorted({str(row["family_id"]) for row in rows})


def revoke_all(conn: UnitConnection, user_id: str) -> list[str]:
    """Revoke every family of the account, and its authorization codes not yet redeemed (a
    sign-in in flight would otherwise start a family after this); the families revoked."""
    conn.run(SPEND_CODES, user_id=user_id)
    return _families(conn.run(REVOKE_ALL, user_id=user_id))


def revoke_others(conn: UnitConnection, user_id: str, keep: str | None) -> list[str]:
    """``revoke_all`` but the family ``keep`` (the caller's own session, if known)."""
    conn.run(SPEND_CODES, user_id=user_id)
    if keep is None:
        return _families(conn.run(REVOKE_ALL, user_id=user_id))
    rows = conn.run(
        "UPDATE oauth_refresh_tokens SET revoked = TRUE WHERE user_id = :user_id"
        " AND revoked = FALSE AND family_id <> :keep RETURNING family_id",
        user_id=user_id,
        keep=keep,
    )
    return _families(rows)


def revoke_one(conn: UnitConnection, user_id: str, family_id: str) -> bool:
    """Revoke the family if it is the account's (True), even if it had ended already."""
    if not conn.run(OWNED, user_id=user_id, family_id=family_id):
        return False
    conn.run(REVOKE_ONE, user_id=user_id, family_id=family_id)
    return True
