"""Revocations heard on the bus: what is recorded, for how long, what a verifier refuses with
them, and when a node stops trusting its cache."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from typing import Any

import pytest
from redis.asyncio import Redis

from propdev.config import Settings
from propdev.registry import InProcessBus
from propdev.registry.pipeline import Pipeliner
from propdev.registry.redis_bus import RedisBus
from propdev.registry.revocations import (
    CERTIFICATE,
    GRANT,
    SUBJECT,
    TOKEN,
    Revocations,
    announce,
    honour_revocations,
)
from propdev.security.tokens import Claims

REDIS_URL = "redis://127.0.0.1:6379/0"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def claims(
    *, jti: str = "j1", sub: str = "u1", cnf: dict[str, Any] | None = None, sid: Any = None
) -> Claims:
    raw: dict[str, Any] = {"sub": sub, "jti": jti}
    if sid is not None:
        raw["sid"] = sid
    return Claims(
        sub=sub,
        client_id="app",
        scope=frozenset(),
        roles=frozenset({"resident"}),
        amr=(),
        exp=1300.0,
        iat=1000.0,
        jti=jti,
        cnf=cnf,
        raw=raw,
    )


class Verifier:
    """The two hooks of ``TokenVerifier`` that ``honour_revocations`` sets."""

    def __init__(self, revoked: Any = None) -> None:
        self.revoked: Any = revoked
        self.cache_trusted: Any = None


async def test_a_revocation_is_published_and_heard_by_every_node_until_it_ends() -> None:
    bus, clock = InProcessBus(), Clock()
    here = Revocations(bus, clock=clock)
    there = Revocations(bus, clock=clock)
    sent: list[tuple[str, dict[str, Any]]] = []

    async def spy(channel: str, message: dict[str, Any]) -> None:
        sent.append((channel, message))

    bus.subscribe("revoked:", spy)
    await here.revoke(SUBJECT, "u1", 1100.0)
    assert sent == [("revoked:subject", {"kind": "subject", "id": "u1", "until": 1100.0})]
    assert here.is_revoked(SUBJECT, "u1") and there.is_revoked(SUBJECT, "u1")
    assert not there.is_revoked(TOKEN, "u1") and not there.is_revoked(SUBJECT, "u2")
    clock.now = 1100.0
    assert there.is_revoked(SUBJECT, "u1")  # still on at the very instant it ends
    clock.now = 1100.5
    assert not there.is_revoked(SUBJECT, "u1")
    assert len(there) == 0  # forgotten once over


async def test_an_access_token_is_revoked_a_minute_past_its_expiry() -> None:
    clock = Clock()
    revocations = Revocations(InProcessBus(), clock=clock)
    await revocations.revoke_access_token(claims(jti="j9"))
    clock.now = 1300.0 + 60.0
    assert revocations.is_revoked(TOKEN, "j9")
    clock.now = 1300.0 + 60.5
    assert not revocations.is_revoked(TOKEN, "j9")


async def test_a_grant_is_revoked_a_minute_past_its_last_tokens_expiry() -> None:
    clock = Clock()
    revocations = Revocations(InProcessBus(), clock=clock)
    await revocations.revoke_grant("s1", 1500.0)
    clock.now = 1560.0
    assert revocations.is_revoked(GRANT, "s1")
    clock.now = 1560.5
    assert not revocations.is_revoked(GRANT, "s1")


async def test_a_later_end_wins_and_an_earlier_one_heard_after_it_changes_nothing() -> None:
    bus, clock = InProcessBus(), Clock()
    revocations = Revocations(bus, clock=clock)
    heard: list[tuple[str, str]] = []
    revocations.on_revoked(lambda kind, ident: heard.append((kind, ident)))
    await revocations.revoke(TOKEN, "j1", 2000.0)
    await bus.publish("revoked:token", {"kind": TOKEN, "id": "j1", "until": 1500})
    clock.now = 1800.0
    assert revocations.is_revoked(TOKEN, "j1")
    assert heard == [(TOKEN, "j1")]  # the earlier end was not recorded again
    await bus.publish("revoked:token", {"kind": TOKEN, "id": "j1", "until": 2500})
    clock.now = 2400.0
    assert revocations.is_revoked(TOKEN, "j1")
    assert heard == [(TOKEN, "j1"), (TOKEN, "j1")]


async def test_a_revocation_made_here_with_an_earlier_end_keeps_the_later_one() -> None:
    clock = Clock()
    revocations = Revocations(InProcessBus(), clock=clock)
    await revocations.revoke(TOKEN, "j1", 2000.0)
    await revocations.revoke(TOKEN, "j1", 1200.0)
    clock.now = 1900.0
    assert revocations.is_revoked(TOKEN, "j1")


async def test_malformed_messages_on_the_channel_are_ignored() -> None:
    bus = InProcessBus()
    revocations = Revocations(bus, clock=Clock())
    for message in (
        {"kind": 1, "id": "x", "until": 2000},
        {"kind": TOKEN, "id": None, "until": 2000},
        {"kind": TOKEN, "id": "x", "until": "2000"},
        {"id": "x", "until": 2000},
    ):
        await bus.publish("revoked:token", message)
    assert len(revocations) == 0
    await bus.publish("revoked:token", {"kind": TOKEN, "id": "x", "until": 2000})
    assert revocations.is_revoked(TOKEN, "x")


async def test_a_node_deaf_for_longer_than_the_bound_stops_trusting_its_cache() -> None:
    deaf = {"for": 0.0}
    revocations = Revocations(InProcessBus(), deaf_for=lambda: deaf["for"], deaf_bound=3.0)
    assert revocations.trusted()
    deaf["for"] = 3.0
    assert revocations.trusted()
    deaf["for"] = 3.01
    assert not revocations.trusted()
    assert Revocations(InProcessBus()).trusted()  # never deaf by default


async def test_the_default_deaf_bound_is_three_seconds() -> None:
    deaf = {"for": 3.0}
    revocations = Revocations(InProcessBus(), deaf_for=lambda: deaf["for"])
    assert revocations.trusted()
    deaf["for"] = 3.5
    assert not revocations.trusted()


async def test_the_verifier_refuses_a_revoked_token_subject_grant_or_certificate() -> None:
    clock = Clock()
    revocations = Revocations(InProcessBus(), clock=clock)
    verifier = Verifier()
    honour_revocations(verifier, revocations)  # type: ignore[arg-type]
    check = verifier.revoked
    bound = claims(cnf={"x5t#S256": "thumb"}, sid="s1")
    assert not check(bound)
    await revocations.revoke(CERTIFICATE, "thumb", 2000.0)
    assert check(bound)
    assert not check(claims(cnf={"x5t#S256": "other"}))
    await revocations.revoke(GRANT, "s1", 2000.0)
    assert check(claims(sid="s1")) and not check(claims(sid="s2"))
    await revocations.revoke(TOKEN, "j7", 2000.0)
    assert check(claims(jti="j7")) and not check(claims(jti="j8"))
    await revocations.revoke(SUBJECT, "u5", 2000.0)
    assert check(claims(sub="u5")) and not check(claims(sub="u6"))
    assert verifier.cache_trusted == revocations.trusted


async def test_the_verifier_ignores_a_binding_or_grant_of_the_wrong_type() -> None:
    revocations = Revocations(InProcessBus(), clock=Clock())
    verifier = Verifier()
    honour_revocations(verifier, revocations)  # type: ignore[arg-type]
    await revocations.revoke(CERTIFICATE, "None", 2000.0)
    await revocations.revoke(GRANT, "None", 2000.0)
    assert not verifier.revoked(claims(cnf={"x5t#S256": None}, sid=7))
    assert not verifier.revoked(claims(cnf={}))


async def test_the_verifier_keeps_the_check_it_had() -> None:
    revocations = Revocations(InProcessBus(), clock=Clock())
    verifier = Verifier(revoked=lambda c: c.sub == "banned")
    honour_revocations(verifier, revocations)  # type: ignore[arg-type]
    assert verifier.revoked(claims(sub="banned"))
    assert not verifier.revoked(claims(sub="fine"))


async def test_a_revocation_that_ended_before_it_was_heard_is_not_in_force() -> None:
    clock = Clock()
    clock.now = 0.8
    revocations = Revocations(InProcessBus(), clock=clock)
    await revocations.revoke(TOKEN, "j1", 0.5)
    assert not revocations.is_revoked(TOKEN, "j1")


async def test_a_revocation_announced_from_the_command_line_reaches_a_node_of_the_cluster() -> None:
    prefix = "test-revocations-" + uuid.uuid4().hex[:10]
    client = Redis.from_url(REDIS_URL)
    pipeliner = Pipeliner(client)
    pipeliner.start()
    bus = RedisBus(client, pipeliner, namespace="{" + prefix + "}", node_id="node-1")
    heard = asyncio.Event()
    revocations = Revocations(bus)
    revocations.on_revoked(lambda kind, ident: heard.set())
    bus.start()
    try:
        async with asyncio.timeout(10):
            while not heard.is_set():  # pub/sub drops what is sent before the node subscribed
                await announce(
                    Settings(redis_url=REDIS_URL, redis_prefix=prefix),
                    TOKEN,
                    "j-cli",
                    time.time() + 60,
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(heard.wait(), 0.2)
        assert revocations.is_revoked(TOKEN, "j-cli")
        assert not revocations.is_revoked(SUBJECT, "j-cli")
    finally:
        await bus.close()
        await pipeliner.close()
        await client.aclose()


async def test_announcing_to_a_redis_that_cannot_be_reached_fails() -> None:
    with pytest.raises(Exception):  # noqa: B017 -- whichever error the bus raises, not silence
        await announce(
            Settings(redis_url="redis://127.0.0.1:1/0", redis_prefix="nowhere"),
            TOKEN,
            "j",
            time.time() + 60,
        )
