"""Presence: a member whose connection Redis saw close is evicted at once; a stalled one is not.

The leases here are long (60 s) and the ticks and heartbeats never come on their own in a
test: whatever moves, the eviction moved it (each step is called, not waited for).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from propdev.registry import SHARDS, Fence, NotOwnerError, RedisMembership, RedisPlacement
from propdev.registry.presence import Presence
from propdev.storage import Database, migrate

LONG = 60.0


@dataclass
class Member:
    membership: RedisMembership
    placement: RedisPlacement
    presence: Presence

    async def crash(self) -> None:
        """What a kill -9 leaves: nothing renewed, no leave, the connection closed."""
        for task in (self.membership._task, self.placement._task, self.presence._task):
            assert task is not None
            task.cancel()
            await asyncio.wait({task})
        await self.presence.close()

    async def stop(self) -> None:
        await self.placement.stop()
        await self.membership.stop()
        await self.presence.close()


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'p.db'}")
    await migrate(database)
    yield database
    await database.close()


@pytest.fixture
async def two(redis: tuple[Redis, str], db: Database) -> AsyncIterator[tuple[Member, Member]]:
    client, namespace = redis
    members: list[Member] = []
    for name in ("a", "b"):
        membership = RedisMembership(
            client, namespace=namespace, node_id=name, lease=LONG, heartbeat=LONG
        )
        placement = RedisPlacement(
            client, membership, Fence(db), namespace=namespace, node_id=name, lease=LONG, tick=LONG
        )
        presence = Presence(
            client,
            membership,
            namespace=namespace,
            node_id=name,
            shard_keys=placement.keys,
            on_lost=placement.suspend,
            on_back=placement.resume,
            poll=LONG,
            confirm=0.0,
        )
        await presence.start()
        await membership.start()
        await placement.start()
        members.append(Member(membership, placement, presence))
    a, b = members
    for member in members:  # both see both; the split settles
        await member.membership.beat()
    for member in members:
        await member.placement.rebalance()
    assert a.placement.held() and b.placement.held()
    assert len(a.placement.held()) + len(b.placement.held()) == SHARDS
    yield a, b
    for member in members:
        await member.stop()


async def owners(client: Redis, placement: RedisPlacement) -> set[Any]:
    return set(await client.mget(placement.keys))


async def test_a_member_whose_connection_closed_is_evicted_and_its_shards_taken_under_new_epochs(
    redis: tuple[Redis, str], two: tuple[Member, Member]
) -> None:
    client, _ = redis
    a, b = two
    assert await a.presence.look() == []  # b seen subscribed
    b_shards = b.placement.held()
    b_epochs = {s: b.placement.epoch(s) for s in b_shards}

    await b.crash()
    assert await a.presence.look() == ["b"]
    assert a.membership.members() == ("a",)
    assert await owners(client, a.placement) == {b"a"} | ({None} if b_shards else set())
    await a.placement.rebalance()
    assert a.placement.held() == list(range(SHARDS))
    assert all(a.placement.epoch(s) > b_epochs[s] for s in b_shards)
    assert await owners(client, a.placement) == {b"a"}
    assert a.presence.evictions == 1


async def test_a_stalled_member_keeps_its_connection_and_is_not_evicted(
    redis: tuple[Redis, str], two: tuple[Member, Member]
) -> None:
    client, _ = redis
    a, b = two
    b_shards = b.placement.held()
    for task in (b.membership._task, b.placement._task):  # renews nothing, as if stalled
        assert task is not None
        task.cancel()
        await asyncio.wait({task})
    for _ in range(3):
        assert await a.presence.look() == []
    await a.membership.beat()
    assert a.membership.members() == ("a", "b")
    assert [s for s, o in enumerate(await client.mget(b.placement.keys)) if o == b"b"] == b_shards
    assert a.presence.evictions == 0


async def test_a_member_that_loses_its_own_connection_acts_for_nothing_until_it_renews_after(
    redis: tuple[Redis, str], two: tuple[Member, Member]
) -> None:
    client, _ = redis
    a, b = two
    assert await a.presence.look() == []
    shard = b.placement.held()[0]
    old_epoch = b.placement.epoch(shard)
    (killed,) = [c for c in await client.client_list() if c["name"] == b.presence.client_name]
    await client.client_kill_filter(_id=killed["id"])

    await b.presence._keep()  # its ping fails: suspended
    assert not b.presence.present
    assert b.placement.held() == []
    with pytest.raises(NotOwnerError):
        b.placement.epoch(shard)
    assert await a.presence.look() == ["b"]  # meanwhile, a evicts it and takes its shards
    await a.placement.rebalance()
    assert a.placement.epoch(shard) > old_epoch

    await b.presence._keep()  # subscribed again: its old leases are someone else's now
    assert b.presence.present
    await b.placement.rebalance()
    assert shard not in b.placement.held()
    assert b.placement.losses >= 1


async def test_a_member_that_loses_its_connection_but_is_not_evicted_resumes_its_own_leases(
    redis: tuple[Redis, str], two: tuple[Member, Member]
) -> None:
    client, _ = redis
    _a, b = two
    b_shards = b.placement.held()
    epochs = {s: b.placement.epoch(s) for s in b_shards}
    (killed,) = [c for c in await client.client_list() if c["name"] == b.presence.client_name]
    await client.client_kill_filter(_id=killed["id"])
    await b.presence._keep()
    assert b.placement.held() == []

    await b.presence._keep()  # back before anyone evicted it
    assert b.placement.held() == []  # a renewal from before proves nothing
    await b.placement.rebalance()
    assert b.placement.held() == b_shards
    assert {s: b.placement.epoch(s) for s in b_shards} == epochs
