"""Moved-out residents' (and disabled staff's) access tokens are refused at once, on every node.

Access tokens are self-contained JWTs, valid for minutes; refresh tokens are revoked in the
store. A move-out revokes the resident as a ``subject`` in ``Revocations``: the cluster's when
the node is one of a cluster (heard by every node over the bus, and already consulted by the
token verifier), else a node-local one that this module hooks into the verifier. A node that
starts within a token lifetime of a move-out reads it back from the store.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from propdev.registry import Bus, Revocations
from propdev.security import Claims, TokenVerifier
from propdev.storage import Database

SUBJECT = "subject"
MARGIN = 60.0  # beyond the longest access token and the verifier's leeway


class SessionCutoffs:
    def __init__(self, revocations: Revocations, *, token_ttl: float) -> None:
        self.revocations = revocations
        self.token_ttl = token_ttl

    @classmethod
    def for_node(
        cls,
        bus: Bus,
        verifier: TokenVerifier,
        cluster_revocations: Revocations | None,
        *,
        token_ttl: float,
    ) -> SessionCutoffs:
        if cluster_revocations is not None:  # Cluster.protect already consults it
            return cls(cluster_revocations, token_ttl=token_ttl)
        revocations = Revocations(bus)
        cutoffs = cls(revocations, token_ttl=token_ttl)
        cutoffs.install(verifier)
        return cutoffs

    def install(self, verifier: TokenVerifier) -> None:
        """Make ``verifier`` refuse the tokens of revoked subjects (keeping its other check)."""
        previous: Callable[[Claims], bool] | None = verifier.revoked
        revocations = self.revocations

        def revoked(claims: Claims) -> bool:
            if previous is not None and previous(claims):
                return True
            return revocations.is_revoked(SUBJECT, claims.sub)

        verifier.revoked = revoked

    def until(self, moved_out_at: float) -> float:
        return moved_out_at + self.token_ttl + MARGIN

    async def cut(self, user_id: str, moved_out_at: float) -> None:
        """Refuse every access token of ``user_id`` from now on (they cannot get new ones)."""
        await self.revocations.revoke(SUBJECT, user_id, self.until(moved_out_at))

    def refuses(self, user_id: str) -> bool:
        return self.revocations.is_revoked(SUBJECT, user_id)

    async def load(self, db: Database, *, now: float | None = None) -> int:
        """Revoke again the residents who moved out, and the staff disabled, within a token
        lifetime (node start)."""
        now = time.time() if now is None else now
        rows = await db.fetch_all(
            "SELECT user_id, moved_out_at FROM residencies WHERE moved_out_at > :since",
            since=now - self.token_ttl - MARGIN,
        )
        for row in rows:
            await self.revocations.revoke(SUBJECT, row["user_id"], self.until(row["moved_out_at"]))
        disabled = await db.fetch_all(  # staff accounts disabled (propdev.staff): the same
            "SELECT user_id, disabled_at FROM staff WHERE disabled_at > :since",
            since=now - self.token_ttl - MARGIN,
        )
        for row in disabled:
            await self.revocations.revoke(SUBJECT, row["user_id"], self.until(row["disabled_at"]))
        return len(rows) + len(disabled)
