"""Who is calling: built from a verified access token."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

MFA_METHODS = frozenset({"otp", "hwk", "mfa"})


@dataclass(frozen=True, slots=True)
class Principal:
    sub: str
    client_id: str
    roles: frozenset[str]
    amr: frozenset[str]
    scope: frozenset[str]
    claims: Mapping[str, Any]

    @classmethod
    def from_claims(cls, claims: Mapping[str, Any]) -> Principal:
        return cls(
            sub=str(claims["sub"]),
            client_id=str(claims.get("client_id", "")),
            roles=frozenset(claims.get("roles") or ()),
            amr=frozenset(claims.get("amr") or ()),
            scope=frozenset(str(claims.get("scope", "")).split()),
            claims=claims,
        )

    @property
    def is_operator(self) -> bool:
        """A staff role (admin, operator, auditor), and a second factor in ``amr`` (RFC 8176
        ``otp``, ``hwk``, or ``mfa``: a recovery code, or an external provider's multi-factor
        login). What each role may do, and where, is ``propdev.http.scope``'s."""
        return bool(self.roles & {"operator", "admin", "auditor"}) and bool(self.amr & MFA_METHODS)
