"""``BoundSockets``: a socket is asked to close (4401) by a revocation that covers its token,
heard here or from another node, and at its token's ``exp`` on the node's clock; no other."""

from __future__ import annotations

import asyncio
from typing import Any

from propdev.http.ws_bindings import TOKEN_ENDED, BoundSockets
from propdev.registry import InProcessBus, Revocations

BOUND = 5.0  # for the expiry timer to fire: a hang, not a measurement
FAR = 4.0e9  # epoch seconds, 2096: a revocation kept and a token valid throughout


class Clock:
    def __init__(self, at: float) -> None:
        self.at = at

    def __call__(self) -> float:
        return self.at


class Closes:
    """The close requests, by socket name; ``first`` is set at the first one."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, int, str]] = []
        self.first = asyncio.Event()

    def of(self, name: str) -> Any:
        def close(code: int, reason: str) -> None:
            self.seen.append((name, code, reason))
            self.first.set()

        return close


def claims(sub: str, jti: str, sid: str | None = None, exp: float = FAR, **more: Any) -> Any:
    return {"sub": sub, "jti": jti, "sid": sid, "exp": exp, **more}


async def test_each_kind_of_revocation_closes_only_the_sockets_it_covers() -> None:
    bus = InProcessBus()
    here, elsewhere = Revocations(bus), Revocations(bus)  # another node's, on the same bus
    sockets, closes = BoundSockets(Clock(0.0)), Closes()
    sockets.listen_to(here)
    sockets.bind(claims("anna", "j1", "s1"), closes.of("anna-1"))
    sockets.bind(claims("anna", "j2", "s2"), closes.of("anna-2"))
    sockets.bind(claims("boris", "j3", "s3", cnf={"x5t#S256": "thumb"}), closes.of("boris"))
    sockets.bind(claims("vera", "j4", "s4"), closes.of("vera"))

    await elsewhere.revoke("token", "j1", FAR)
    assert closes.seen == [("anna-1", TOKEN_ENDED, "token revoked")]
    await here.revoke("grant", "s2", FAR)
    await here.revoke("certificate", "thumb", FAR)
    await elsewhere.revoke("subject", "vera", FAR)
    await here.revoke("subject", "anna", FAR)  # both of hers are closed already: not again

    assert [name for name, _, _ in closes.seen] == ["anna-1", "anna-2", "boris", "vera"]
    assert len(sockets) == 0
    sockets.stop()


async def test_a_socket_bound_after_its_token_was_revoked_is_closed_at_once() -> None:
    revocations = Revocations(InProcessBus())
    sockets, closes = BoundSockets(Clock(0.0)), Closes()
    sockets.listen_to(revocations)
    await revocations.revoke("subject", "anna", FAR)

    sockets.bind(claims("anna", "j1"), closes.of("anna"))
    sockets.bind(claims("boris", "j2"), closes.of("boris"))

    assert closes.seen == [("anna", TOKEN_ENDED, "token revoked")]
    assert len(sockets) == 1
    sockets.stop()


async def test_an_unbound_socket_is_not_asked_to_close() -> None:
    revocations = Revocations(InProcessBus())
    sockets, closes = BoundSockets(Clock(0.0)), Closes()
    sockets.listen_to(revocations)
    bound = sockets.bind(claims("anna", "j1"), closes.of("anna"))
    sockets.unbind(bound)
    sockets.unbind(bound)  # twice: the handler's finally after a close

    await revocations.revoke("subject", "anna", FAR)

    assert closes.seen == [] and len(sockets) == 0
    sockets.stop()


async def test_a_socket_closes_at_its_tokens_expiry_on_the_clock_and_not_before() -> None:
    clock = Clock(100.0)
    sockets, closes = BoundSockets(clock, tick=0.01), Closes()
    sockets.bind(claims("anna", "j1", exp=150.0), closes.of("anna"))
    sockets.bind(claims("boris", "j2", exp=250.0), closes.of("boris"))
    sockets.bind({"sub": "vera", "jti": "j3"}, closes.of("vera"))  # no exp: never expires

    clock.at = 200.0  # tests move the node's clock; the timer reads it again within a tick
    await asyncio.wait_for(closes.first.wait(), timeout=BOUND)

    assert closes.seen == [("anna", TOKEN_ENDED, "token expired")]  # boris' is still due
    assert len(sockets) == 2
    sockets.stop()
