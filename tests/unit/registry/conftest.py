"""One parametrized fixture per protocol: the same tests run in-process and on Redis.

The Redis flavour uses the machine's Redis with a random namespace per test (never FLUSHALL).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from redis.asyncio import Redis

from propdev.registry import (
    Bus,
    InProcessBus,
    InProcessMembership,
    Membership,
    RedisBus,
    RedisMembership,
)
from propdev.registry.pipeline import Pipeliner

REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture
async def redis() -> AsyncIterator[tuple[Redis, str]]:
    client = Redis.from_url(REDIS_URL)
    namespace = "{test-" + uuid.uuid4().hex[:10] + "}"
    try:
        yield client, namespace
    finally:
        keys = [k async for k in client.scan_iter(match=f"{namespace}:*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()


@dataclass
class Buses:
    """Two nodes' buses; in-process, both are one bus (one node)."""

    first: Bus
    second: Bus
    remote: bool


@pytest.fixture(params=["in-process", "redis"])
async def buses(request: pytest.FixtureRequest, redis: tuple[Redis, str]) -> AsyncIterator[Buses]:
    if request.param == "in-process":
        bus = InProcessBus()
        yield Buses(bus, bus, remote=False)
        await bus.close()
        return
    client, namespace = redis
    made: list[tuple[RedisBus, Pipeliner]] = []
    for node in ("a", "b"):
        pipeliner = Pipeliner(client)
        pipeliner.start()
        bus = RedisBus(client, pipeliner, namespace=namespace, node_id=node)
        bus.start()
        made.append((bus, pipeliner))
    yield Buses(made[0][0], made[1][0], remote=True)
    for bus, pipeliner in made:
        await bus.close()
        await pipeliner.close()


@pytest.fixture(params=["in-process", "redis"])
async def membership_of(
    request: pytest.FixtureRequest, redis: tuple[Redis, str]
) -> AsyncIterator[Any]:
    """``membership_of(node_id)`` -> a started Membership; all of one cluster."""
    started: list[Membership] = []

    if request.param == "in-process":

        async def make(node_id: str) -> Membership:
            member = InProcessMembership(node_id)
            await member.start()
            started.append(member)
            return member

    else:
        client, namespace = redis

        async def make(node_id: str) -> Membership:
            member = RedisMembership(
                client, namespace=namespace, node_id=node_id, lease=0.6, heartbeat=0.1
            )
            await member.start()
            started.append(member)
            return member

    make.remote = request.param == "redis"  # type: ignore[attr-defined]
    yield make
    for member in started:
        await member.stop()
