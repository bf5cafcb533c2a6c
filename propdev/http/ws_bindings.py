"""Each resident WebSocket bound to the token it was opened with: closed when that token ends.

A socket outlives the check of its token at the upgrade, so the node keeps, per open socket,
the identity the token carried (``sub``, ``jti``, ``sid``, ``exp`` and the certificate
thumbprint it may be bound to) and asks the socket to close with **4401** "token revoked" as
soon as this node hears a revocation that covers it (``propdev.registry.Revocations``: an
access token by ``jti``, a subject cut off by a move-out or a disabled account, a grant by
``sid`` after a sign-out, a password change or a deleted session, a certificate), and with
**4401** "token expired" at the token's ``exp`` on the node's clock. 4401 for both, as the
console's socket for an expired token: the client's token no longer authenticates it, a
refresh (or a new sign-in) and a reconnect with ``?after=ID`` is the way back; a refresh
under a revoked grant or subject fails, and the client signs in again or gives up.

No task per socket: revocations arrive through the listener the node installs
(``listen_to``), indexed by what they name; expiries through one loop timer for the node,
armed for the earliest ``exp`` and never further than ``TICK`` ahead (so a clock that tests
move forward is read again within a tick), which goes quiet when no socket is bound.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
from collections.abc import Callable, Mapping
from typing import Any

import structlog

from propdev.registry import CERTIFICATE, GRANT, SUBJECT, TOKEN, Revocations

log = structlog.get_logger()

TOKEN_ENDED = 4401
"""The close code of a socket whose token expired or was revoked."""
TICK = 1.0  # the longest the expiry timer sleeps before it reads the node's clock again

Close = Callable[[int, str], None]
"""Asks the socket's handler to close with this code and reason (it closes from its task)."""


class Bound:
    """One socket's binding: what its token named, and how to ask it to close."""

    __slots__ = ("close", "exp", "keys")

    def __init__(self, keys: tuple[tuple[str, str], ...], exp: float, close: Close) -> None:
        self.keys = keys
        self.exp = exp
        self.close: Close | None = close  # None once closed or unbound


class BoundSockets:
    """The node's resident sockets by the token identity each was opened with."""

    def __init__(self, clock: Callable[[], float], *, tick: float = TICK) -> None:
        self._clock = clock
        self._tick = tick
        self._by_key: dict[tuple[str, str], set[Bound]] = {}
        self._expiries: list[tuple[float, int, Bound]] = []  # a heap; unbound ones left lazily
        self._order = itertools.count()
        self._count = 0
        self._timer: asyncio.TimerHandle | None = None
        self._is_revoked: Callable[[str, str], bool] = lambda kind, ident: False

    def listen_to(self, revocations: Revocations) -> None:
        """Hear ``revocations`` (the node's: what this node records and what it hears from the
        others), and check each new binding against what it already holds."""
        revocations.on_revoked(self.revoked)
        self._is_revoked = revocations.is_revoked

    def bind(self, claims: Mapping[str, Any], close: Close) -> Bound:
        """Bind a socket opened with the token of ``claims``; ``close`` is called at most once.
        A revocation heard since the token was verified closes it at once."""
        keys = _keys(claims)
        exp = claims.get("exp")
        bound = Bound(keys, float(exp) if isinstance(exp, int | float) else math.inf, close)
        if any(self._is_revoked(kind, ident) for kind, ident in keys):
            bound.close = None
            log.info("ws_token_ended", reason="token revoked")
            close(TOKEN_ENDED, "token revoked")
            return bound
        self._count += 1
        for key in keys:
            self._by_key.setdefault(key, set()).add(bound)
        if bound.exp < math.inf:
            heapq.heappush(self._expiries, (bound.exp, next(self._order), bound))
            self._arm()
        return bound

    def unbind(self, bound: Bound) -> None:
        """The socket closed: forget it (its expiry stays in the heap until due, ignored)."""
        if bound.close is None:
            return
        bound.close = None
        self._count -= 1
        for key in bound.keys:
            sockets = self._by_key.get(key)
            if sockets is not None:
                sockets.discard(bound)
                if not sockets:
                    del self._by_key[key]

    def revoked(self, kind: str, ident: str) -> None:
        """``Revocations`` listener: close every socket whose token the revocation covers."""
        for bound in list(self._by_key.get((kind, ident), ())):
            self._end(bound, "token revoked", kind=kind)

    def __len__(self) -> int:
        """The sockets bound now."""
        return self._count

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _end(self, bound: Bound, reason: str, **why: str) -> None:
        close = bound.close
        self.unbind(bound)
        if close is not None:
            log.info("ws_token_ended", reason=reason, **why)
            close(TOKEN_ENDED, reason)

    def _arm(self) -> None:
        if self._timer is not None or not self._expiries:
            return
        delay = min(self._tick, max(0.0, self._expiries[0][0] - self._clock()))
        self._timer = asyncio.get_running_loop().call_later(delay, self._expire)

    def _expire(self) -> None:
        self._timer = None
        now, heap = self._clock(), self._expiries
        while heap and (heap[0][0] <= now or heap[0][2].close is None):
            _, _, bound = heapq.heappop(heap)
            if bound.close is not None:
                self._end(bound, "token expired")
        self._arm()


def _keys(claims: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    """What a revocation may name to cover this token (as ``honour_revocations`` checks it)."""
    keys = [(SUBJECT, str(claims["sub"]))]
    if isinstance(claims.get("jti"), str):
        keys.append((TOKEN, claims["jti"]))
    if isinstance(claims.get("sid"), str):
        keys.append((GRANT, claims["sid"]))
    cnf = claims.get("cnf")
    thumbprint = cnf.get("x5t#S256") if isinstance(cnf, Mapping) else None
    if isinstance(thumbprint, str):
        keys.append((CERTIFICATE, thumbprint))
    return tuple(keys)
