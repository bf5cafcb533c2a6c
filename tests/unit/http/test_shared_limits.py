"""Rate limits shared by the nodes of a cluster: GCRA in one Redis Lua script."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from propdev.config import Settings
from propdev.http.ratelimit import LocalLimiter, RedisLimiter, Rule

REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture
async def prefix() -> AsyncIterator[str]:
    """A key prefix of this test only; its keys are deleted afterwards (never FLUSHALL)."""
    name = "{test-rl-" + uuid.uuid4().hex[:10] + "}:rl:"
    yield name
    client = Redis.from_url(REDIS_URL)
    try:
        keys = [k async for k in client.scan_iter(match=f"{name}*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


async def test_two_nodes_share_one_budget_under_100_concurrent_takes(prefix: str) -> None:
    first, second = Redis.from_url(REDIS_URL), Redis.from_url(REDIS_URL)  # one client per node
    try:
        nodes = [RedisLimiter(first, prefix=prefix), RedisLimiter(second, prefix=prefix)]
        rule = Rule("client", rate=0.01, burst=10)  # 10 now, the next one in 100 s
        decisions = await asyncio.gather(*(nodes[i % 2].hit("sub:anna", rule) for i in range(100)))
        allowed = [d for d in decisions if d.allowed]
        assert len(allowed) == 10
        assert all(90 < d.retry_after <= 100 for d in decisions if not d.allowed)
        # Another key has its own budget, on either node.
        assert (await nodes[1].hit("sub:boris", rule)).allowed
    finally:
        await first.aclose()
        await second.aclose()


async def test_with_redis_down_each_node_falls_back_to_its_local_limit(prefix: str) -> None:
    now = [1000.0]
    dead = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.5)
    try:
        limiter = RedisLimiter(dead, prefix=prefix, fallback=LocalLimiter(clock=lambda: now[0]))
        rule = Rule("client", rate=1.0, burst=3)
        decisions = [await limiter.hit("ip:10.0.0.1", rule) for _ in range(5)]
        assert [d.allowed for d in decisions] == [True, True, True, False, False]
        now[0] += 1.0
        assert (await limiter.hit("ip:10.0.0.1", rule)).allowed
    finally:
        await dead.aclose()


async def test_a_cluster_node_takes_its_limits_from_the_clusters_redis(tmp_path: Path) -> None:
    from propdev.node import Node

    settings = Settings.from_env(
        {
            "PROPDEV_DATA_DIR": str(tmp_path),
            "PROPDEV_REDIS_URL": REDIS_URL,
            "PROPDEV_REDIS_PREFIX": "limits-test",
            "PROPDEV_NODE_ID": "n1",
        }
    )
    node = Node(settings)
    try:
        assert node.cluster is not None
        assert isinstance(node.rate_limiter, RedisLimiter)
        assert node.rate_limiter.redis is node.cluster.redis  # the cluster's one connection pool
        assert node.rate_limiter.prefix == "{limits-test}:rl:"  # the cluster's hash slot
    finally:
        if node.cluster is not None:
            await node.cluster.redis.aclose()
        await node.db.close()
    embedded = Node(Settings.from_env({"PROPDEV_DATA_DIR": str(tmp_path / "solo")}))
    try:
        assert embedded.rate_limiter is None  # make_app uses a LocalLimiter
    finally:
        await embedded.db.close()
