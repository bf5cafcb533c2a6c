from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from propdev.registry import (
    SHARDS,
    Fence,
    FencedError,
    InProcessMembership,
    InProcessPlacement,
    NotOwnerError,
    RedisMembership,
    RedisPlacement,
    device_hosts,
    preferred_owner,
    shard_of,
)
from propdev.storage import Database, migrate


def test_a_device_maps_to_the_same_shard_in_every_process() -> None:
    # Fixed values: a change of hash function would move every device.
    assert [shard_of(k) for k in ("ap-a-entrance", "ap-b-garage", "42")] == [
        shard_of("ap-a-entrance"),
        shard_of("ap-b-garage"),
        shard_of("42"),
    ]
    assert all(0 <= shard_of(str(i)) < SHARDS for i in range(1000))
    assert len({shard_of(str(i)) for i in range(1000)}) == SHARDS


def test_a_join_moves_only_the_shards_the_newcomer_wins() -> None:
    before = {s: preferred_owner(s, ("a", "b")) for s in range(SHARDS)}
    after = {s: preferred_owner(s, ("a", "b", "c")) for s in range(SHARDS)}
    moved = [s for s in range(SHARDS) if before[s] != after[s]]
    assert moved and all(after[s] == "c" for s in moved)
    assert 10 <= len(moved) <= 35


@pytest.fixture
async def db(tmp_path: Path) -> Any:
    database = Database(f"sqlite:///{tmp_path / 'p.db'}")
    await migrate(database)
    yield database
    await database.close()


async def test_the_embedded_node_holds_every_shard() -> None:
    placement = InProcessPlacement("solo")
    assert placement.ready and all(placement.holds(s) for s in range(SHARDS))


async def test_a_store_epoch_newer_than_the_holders_refuses_its_commit(db: Database) -> None:
    fence = Fence(db)
    first = await fence.advance([3], "a")
    async with db.transaction() as conn:
        await fence.check(conn, 3, first[3])  # current: passes
    second = await fence.advance([3], "b")  # b took the shard over
    assert second[3] == first[3] + 1
    with pytest.raises(FencedError):
        async with db.transaction() as conn:
            await fence.check(conn, 3, first[3])


async def _until(check: Any, within: float) -> None:
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def test_two_nodes_split_the_shards_and_the_survivor_takes_them_all(
    redis: tuple[Redis, str], db: Database
) -> None:
    client, namespace = redis
    nodes = []
    for name in ("a", "b"):
        member = RedisMembership(
            client, namespace=namespace, node_id=name, lease=0.6, heartbeat=0.1
        )
        await member.start()
        placement = RedisPlacement(
            client, member, Fence(db), namespace=namespace, node_id=name, lease=0.6, tick=0.1
        )
        await placement.start()
        nodes.append((member, placement))
    (ma, a), (mb, b) = nodes
    await _until(lambda: len(a.held()) + len(b.held()) == SHARDS and a.held() and b.held(), 15)
    assert not set(a.held()) & set(b.held())
    b_shards = b.held()
    epoch = b.epoch(b_shards[0])

    await b.stop()  # hand-off: b releases, a takes
    await mb.stop()
    await _until(lambda: len(a.held()) == SHARDS, 15)
    assert a.epoch(b_shards[0]) > epoch
    with pytest.raises(NotOwnerError):
        b.epoch(b_shards[0])
    await a.stop()
    await ma.stop()


async def test_a_draining_node_is_not_chosen_and_its_shards_move_while_it_is_a_member(
    redis: tuple[Redis, str], db: Database
) -> None:
    client, namespace = redis
    nodes = []
    for name in ("a", "b"):
        member = RedisMembership(
            client, namespace=namespace, node_id=name, lease=0.6, heartbeat=0.1
        )
        await member.start()
        placement = RedisPlacement(
            client, member, Fence(db), namespace=namespace, node_id=name, lease=0.6, tick=0.1
        )
        await placement.start()
        nodes.append((member, placement))
    (ma, a), (mb, b) = nodes
    try:
        await _until(lambda: len(a.held()) + len(b.held()) == SHARDS and b.held(), 15)

        b.stop_taking()
        await mb.announce(draining=True)
        await _until(lambda: ma.info("b").get("draining") is True, 15)
        assert device_hosts(ma) == ("a",)
        await b.hand_off_all()

        await _until(lambda: len(a.held()) == SHARDS, 15)
        assert ma.members() == ("a", "b")  # b still a member: it answers what reaches it
        assert b.held() == []
        # b still reads the owners, to forward its own asks to them.
        await _until(lambda: all(b.owner_of(s) == "a" for s in range(SHARDS)), 15)
    finally:
        for member, placement in reversed(nodes):
            await placement.stop()
            await member.stop()


async def test_a_shard_being_handed_off_keeps_its_lease_until_its_actors_are_idle(
    redis: tuple[Redis, str], db: Database
) -> None:
    client, namespace = redis
    member = RedisMembership(client, namespace=namespace, node_id="a", lease=0.6, heartbeat=0.1)
    await member.start()
    busy = asyncio.Event()
    idle = asyncio.Event()

    async def release(shard: int) -> None:  # shard 0's actor finishes an open first
        if shard == 0:
            busy.set()
            await idle.wait()

    placement = RedisPlacement(
        client, member, Fence(db), namespace=namespace, node_id="a", lease=0.6, tick=0.1,
        release=release,
    )  # fmt: skip
    await placement.start()
    key = f"{namespace}:shard:0"
    try:
        await _until(lambda: len(placement.held()) == SHARDS, 15)
        handing_off = asyncio.create_task(placement.hand_off_all())
        await busy.wait()
        first = await client.pttl(key)

        # Renewed while the actor works, past the 0.6 s lease (8 renewals, 0.1 s apart): the
        # open's commit keeps its epoch, since no other node can take the shard meanwhile.
        renewals, last = 0, first
        while renewals < 8:
            ttl = await client.pttl(key)
            assert ttl > 0, f"the lease of a shard being handed off ran out after {renewals}"
            renewals += ttl > last
            last = ttl
            await asyncio.sleep(0.02)
        assert placement.held_epoch(0) >= 1
        assert not placement.holds(0)  # no new work for it meanwhile

        idle.set()
        await handing_off
        assert await client.exists(key) == 0 and placement.held() == []
    finally:
        idle.set()
        await placement.stop()
        await member.stop()


async def test_a_shard_being_handed_off_keeps_its_epoch_for_the_actors_last_save(
    redis: tuple[Redis, str], db: Database
) -> None:
    client, namespace = redis
    member = RedisMembership(client, namespace=namespace, node_id="a", lease=0.6, heartbeat=0.1)
    await member.start()
    seen: dict[int, tuple[bool, int]] = {}
    placement: RedisPlacement

    async def release(shard: int) -> None:  # what the actors' on_stop would see
        seen[shard] = (placement.holds(shard), placement.held_epoch(shard))

    placement = RedisPlacement(
        client, member, Fence(db), namespace=namespace, node_id="a", lease=0.6, tick=0.1,
        release=release,
    )  # fmt: skip
    await placement.start()
    await _until(lambda: len(placement.held()) == SHARDS, 15)
    epochs = {s: placement.epoch(s) for s in range(SHARDS)}
    await placement.stop()
    await member.stop()
    # No longer taking messages for it (and its lease may run out on the way: renewals stopped),
    # but the epoch it took the shard under is still at hand for the actors' fenced saves.
    assert seen == {s: (False, epochs[s]) for s in range(SHARDS)}
    with pytest.raises(NotOwnerError):
        placement.held_epoch(0)


async def test_a_gateway_only_node_takes_no_shard_and_the_devices_nodes_split_them(
    redis: tuple[Redis, str], db: Database
) -> None:
    client, namespace = redis
    nodes: list[tuple[RedisMembership, RedisPlacement]] = []
    for name, roles in (("a", ["gateway"]), ("b", ["devices"]), ("c", ["devices", "gateway"])):
        member = RedisMembership(
            client, namespace=namespace, node_id=name, lease=0.6, heartbeat=0.1,
            info={"roles": roles},
        )  # fmt: skip
        await member.start()
        placement = RedisPlacement(
            client, member, Fence(db), namespace=namespace, node_id=name, lease=0.6, tick=0.1,
            devices="devices" in roles,
        )  # fmt: skip
        await placement.start()
        nodes.append((member, placement))
    (ma, a), (_, b), (_, c) = nodes
    try:
        await _until(lambda: len(b.held()) + len(c.held()) == SHARDS and b.held() and c.held(), 15)
        assert device_hosts(ma) == ("b", "c") and a.held() == [] and a.ready
        assert not set(b.held()) & set(c.held())
        held_by = {s: "b" if s in b.held() else "c" for s in range(SHARDS)}
        assert held_by == {s: preferred_owner(s, ("b", "c")) for s in range(SHARDS)}
        # The gateway sees the owners, to forward to them.
        await _until(lambda: all(a.owner_of(s) in ("b", "c") for s in range(SHARDS)), 15)
    finally:
        for member, placement in reversed(nodes):
            await placement.stop()
            await member.stop()


async def test_a_member_that_announces_no_roles_hosts_devices() -> None:
    solo = InProcessMembership("old", info={})
    assert device_hosts(solo) == ("old",)
    assert device_hosts(InProcessMembership("gw", info={"roles": ["gateway"]})) == ()
