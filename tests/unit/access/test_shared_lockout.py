"""The keypad lockout in the cluster's Redis: the same rule as in memory, and a device's count
and lockout outlive its change of owner (two nodes' lockouts on one Redis)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis
from structlog.testing import capture_logs

from propdev.access import KeypadLockout, KeypadPolicy, Lockout, RedisKeypadLockout
from propdev.access.lockout import LOCKED, REFUSED
from propdev.config import Settings

REDIS_URL = "redis://127.0.0.1:6379/0"
POLICY = KeypadPolicy(attempts=3, window=60, cooldown=120)


@pytest.fixture
async def redis() -> AsyncIterator[tuple[Redis, str]]:
    client = Redis.from_url(REDIS_URL)
    prefix = "{test-keypad-" + uuid.uuid4().hex[:10] + "}:"
    try:
        yield client, prefix
    finally:
        keys = [k async for k in client.scan_iter(match=f"{prefix}*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()


@pytest.fixture(params=["in-memory", "redis"])
def make(request: pytest.FixtureRequest, redis: tuple[Redis, str]) -> Any:
    """``make(events)`` -> a Lockout of one node; with Redis, every node's shares the state."""
    client, prefix = redis

    def build(events: list[str]) -> Lockout:
        if request.param == "in-memory":
            return KeypadLockout(POLICY, on_event=events.append)
        return RedisKeypadLockout(client, prefix=prefix, policy=POLICY, on_event=events.append)

    return build


async def test_the_nth_unknown_code_within_the_window_locks_the_device_for_the_cooldown(
    make: Any,
) -> None:
    events: list[str] = []
    keypads: Lockout = make(events)
    assert [await keypads.wrong("door", t) for t in (0, 10, 20)] == [False, False, True]
    assert await keypads.refuse("other-door", 21) is None
    assert await keypads.refuse("door", 139.9) == 140
    assert await keypads.refuse("door", 140) is None  # the cooldown is over
    assert events == [LOCKED, REFUSED]
    assert (await keypads.snapshots(["door"], 140))["door"] == {
        "locked_out": False,
        "locked_until": None,
        "wrong_codes": 0,
        "lockouts": 1,
        "refused_while_locked": 1,
    }


async def test_old_wrong_codes_leave_the_window_and_a_known_code_ends_the_run(make: Any) -> None:
    keypads: Lockout = make([])
    assert not await keypads.wrong("door", 0)
    assert not await keypads.wrong("door", 30)
    assert not await keypads.wrong("door", 61)  # the first has left the window
    assert (await keypads.snapshots(["door"], 61))["door"]["wrong_codes"] == 2
    await keypads.right("door")
    assert not await keypads.wrong("door", 62)
    assert not await keypads.wrong("door", 63)
    assert await keypads.wrong("door", 64)


async def test_a_device_that_changes_owner_keeps_its_count_and_its_lockout(
    redis: tuple[Redis, str],
) -> None:
    client, prefix = redis
    a_events: list[str] = []
    b_events: list[str] = []
    a = RedisKeypadLockout(client, prefix=prefix, policy=POLICY, on_event=a_events.append)
    b = RedisKeypadLockout(client, prefix=prefix, policy=POLICY, on_event=b_events.append)
    assert not await a.wrong("door", 0)
    assert not await a.wrong("door", 1)  # the device's owner was a ...
    assert await b.wrong("door", 2)  # ... and is b now: the third wrong code locks it
    assert await a.refuse("door", 3) == 122  # locked on every node
    view = await a.snapshots(["door"], 3)  # a's console sees what b did
    assert view["door"]["locked_out"] and view["door"]["lockouts"] == 1
    assert b_events == [LOCKED] and a_events == [REFUSED]


async def test_with_redis_down_a_node_locks_keypads_on_its_own_count_and_says_so() -> None:
    dead = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    try:
        keypads = RedisKeypadLockout(dead, prefix="{down}:", policy=POLICY)
        with capture_logs() as logs:
            assert [await keypads.wrong("door", t) for t in (0, 1, 2)] == [False, False, True]
            assert await keypads.refuse("door", 3) == 122  # not fail-open
            assert (await keypads.snapshots(["door"], 3))["door"]["locked_out"]
        down = [r for r in logs if r["event"] == "keypad_lockout_redis_unavailable"]
        assert len(down) == 1
    finally:
        await dead.aclose()


async def test_a_cluster_node_keeps_its_lockouts_in_the_clusters_redis(tmp_path: Path) -> None:
    from propdev.node import Node

    settings = Settings.from_env(
        {
            "PROPDEV_DATA_DIR": str(tmp_path),
            "PROPDEV_REDIS_URL": REDIS_URL,
            "PROPDEV_REDIS_PREFIX": "keypad-test",
            "PROPDEV_NODE_ID": "n1",
            "PROPDEV_KEYPAD_ATTEMPTS": "4",
        }
    )
    node = Node(settings)
    try:
        lockout = node.access.opening.lockout
        assert node.cluster is not None and isinstance(lockout, RedisKeypadLockout)
        assert lockout.redis is node.cluster.redis and lockout.prefix == "{keypad-test}:"
        assert lockout.policy.attempts == 4
    finally:
        if node.cluster is not None:
            await node.cluster.redis.aclose()
        await node.db.close()
    embedded = Node(Settings.from_env({"PROPDEV_DATA_DIR": str(tmp_path / "solo")}))
    try:
        assert isinstance(embedded.access.opening.lockout, KeypadLockout)
    finally:
        await embedded.db.close()
