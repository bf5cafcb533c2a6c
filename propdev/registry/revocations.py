"""Revocations heard on the bus: tokens, subjects, certificates; every node within a second.

``revoke(kind, ident, until)`` records the revocation here and publishes it on the
``revoked:`` channel; every node records what it hears until ``until`` (a token's expiry, say).
A node that has not heard the bus for ``deaf_bound`` seconds may have missed one, so it stops
trusting what it cached (``trusted()`` is False): the token verifier then checks every
token again instead of answering from its cache.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from propdev.registry.bus import Bus
from propdev.registry.connect import close_redis, redis_client
from propdev.registry.pipeline import Pipeliner
from propdev.registry.redis_bus import RedisBus

if TYPE_CHECKING:
    from propdev.config import Settings
    from propdev.security import Claims, TokenVerifier

CHANNEL = "revoked:"
DEAF_BOUND = 3.0
TOKEN, SUBJECT, CERTIFICATE, GRANT = "token", "subject", "certificate", "grant"
"""Kinds: an access token by ``jti``, a user by ``sub``, a client certificate by its SHA-256
thumbprint (the ``x5t#S256`` its bound tokens carry), a grant (one login's refresh family) by
the ``sid`` its access tokens carry."""
TOKEN_MARGIN = 60.0  # kept past a token's expiry: beyond the verifier's leeway


def honour_revocations(verifier: TokenVerifier, revocations: Revocations) -> None:
    """Make ``verifier`` refuse revoked tokens, subjects, grants and tokens bound to a revoked
    certificate (keeping any check it had), and distrust its cache while the node may have
    missed revocations."""
    previous = verifier.revoked

    def revoked(claims: Claims) -> bool:
        if previous is not None and previous(claims):
            return True
        bound = claims.cnf.get("x5t#S256") if claims.cnf is not None else None
        return (
            revocations.is_revoked(TOKEN, claims.jti)
            or revocations.is_revoked(SUBJECT, claims.sub)
            or (isinstance(bound, str) and revocations.is_revoked(CERTIFICATE, bound))
            or (claims.sid is not None and revocations.is_revoked(GRANT, claims.sid))
        )

    verifier.revoked = revoked
    verifier.cache_trusted = revocations.trusted


class Revocations:
    def __init__(
        self,
        bus: Bus,
        *,
        deaf_for: Callable[[], float] = lambda: 0.0,
        deaf_bound: float = DEAF_BOUND,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._bus = bus
        self._deaf_for = deaf_for
        self._deaf_bound = deaf_bound
        self._clock = clock
        self._revoked: dict[tuple[str, str], float] = {}
        self._listeners: list[Callable[[str, str], None]] = []
        bus.subscribe(CHANNEL, self._heard)

    async def revoke(self, kind: str, ident: str, until: float) -> None:
        """Revoke ``ident`` of ``kind`` (``token`` by jti, ``subject``, ``certificate``...)."""
        self._record(kind, ident, until)
        await self._bus.publish(CHANNEL + kind, {"kind": kind, "id": ident, "until": until})

    async def revoke_access_token(self, claims: Claims) -> None:
        """RFC 7009 for an access token: refused by every node until it would have expired."""
        await self.revoke(TOKEN, claims.jti, claims.exp + TOKEN_MARGIN)

    async def revoke_grant(self, sid: str, last_expiry: float) -> None:
        """A revoked grant (a replayed code, a revoked or reused refresh token): every access
        token issued under it is refused by every node until ``last_expiry``, the latest any
        of them expires."""
        await self.revoke(GRANT, sid, last_expiry + TOKEN_MARGIN)

    def is_revoked(self, kind: str, ident: str) -> bool:
        until = self._revoked.get((kind, ident))
        if until is None:
            return False
        if until < self._clock():
            del self._revoked[(kind, ident)]
            return False
        return True

    def trusted(self) -> bool:
        """False once this node may have missed revocations (it cannot hear the bus)."""
        return self._deaf_for() <= self._deaf_bound

    def on_revoked(self, listener: Callable[[str, str], None]) -> None:
        self._listeners.append(listener)

    def __len__(self) -> int:
        return len(self._revoked)

    def _record(self, kind: str, ident: str, until: float) -> None:
        self._revoked[(kind, ident)] = max(until, self._revoked.get((kind, ident), 0.0))
        for listener in self._listeners:
            listener(kind, ident)

    async def _heard(self, channel: str, message: dict[str, Any]) -> None:
        kind, ident, until = message.get("kind"), message.get("id"), message.get("until")
        if isinstance(kind, str) and isinstance(ident, str) and isinstance(until, int | float):
            if (kind, ident) not in self._revoked or self._revoked[(kind, ident)] < until:
                self._record(kind, ident, float(until))


async def announce(settings: Settings, kind: str, ident: str, until: float) -> None:
    """For a command-line tool: publish one revocation to the nodes of the settings' cluster
    and return once Redis took it (``BusUnavailableError`` if Redis cannot be reached)."""
    prefix = settings.redis_prefix
    redis = redis_client(settings, socket_connect_timeout=2.0, socket_timeout=3.0)
    pipeliner = Pipeliner(redis)
    pipeliner.start()
    try:
        bus = RedisBus(redis, pipeliner, namespace="{" + prefix + "}", node_id="cli")
        await Revocations(bus).revoke(kind, ident, until)
        await pipeliner.send("PING")  # one writer, in order: the PUBLISH went out before it
    finally:
        await pipeliner.close()
        await close_redis(redis)
