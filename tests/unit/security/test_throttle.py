"""Failure throttles: in-process, and shared by a cluster's nodes through the real Redis."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from redis.asyncio import Redis
from structlog.testing import capture_logs

from propdev.config.settings import Settings
from propdev.http.routes.oauth import oauth_routes
from propdev.security import (
    LocalThrottle,
    OAuthServer,
    RedisThrottle,
    TokenIssuer,
    TokenVerifier,
)
from propdev.storage import Database
from tests.unit.security.conftest import FakeClock
from tests.unit.security.helpers import exchange, login

REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture
async def redis() -> AsyncIterator[Redis]:
    client = Redis.from_url(REDIS_URL)
    yield client
    await client.aclose()


@pytest.fixture
async def prefix(redis: Redis) -> AsyncIterator[str]:
    """A key prefix of this test only; its keys are deleted afterwards (never FLUSHALL)."""
    name = "{test-throttle-" + uuid.uuid4().hex[:10] + "}:auth:"
    yield name
    keys = [k async for k in redis.scan_iter(match=f"{name}*")]
    if keys:
        await redis.delete(*keys)


async def test_the_local_throttle_locks_a_key_until_its_oldest_failure_ages_out() -> None:
    clock = FakeClock()
    throttle = LocalThrottle(3, 60.0, clock=clock)
    for _ in range(2):
        await throttle.failed("vera")
        clock.advance(10)
    assert await throttle.retry_after("vera") == 0
    await throttle.failed("vera")
    assert await throttle.retry_after("vera") == pytest.approx(40.0)  # first failure + 60 s
    assert await throttle.retry_after("anna") == 0
    clock.advance(40)
    assert await throttle.retry_after("vera") == 0
    await throttle.failed("vera")
    assert await throttle.retry_after("vera") == pytest.approx(10.0)
    await throttle.succeeded("vera")
    assert await throttle.retry_after("vera") == 0


async def test_a_local_throttle_with_no_failures_allowed_is_off() -> None:
    throttle = LocalThrottle(0, 60.0)
    for _ in range(10):
        await throttle.failed("vera")
    assert await throttle.retry_after("vera") == 0


async def test_two_nodes_throttles_see_each_others_failures(redis: Redis, prefix: str) -> None:
    other = Redis.from_url(REDIS_URL)  # the second node has its own connection pool
    try:
        first = RedisThrottle(redis, prefix=prefix, max_failures=4, window=300.0)
        second = RedisThrottle(other, prefix=prefix, max_failures=4, window=300.0)
        for node in (first, second, first):
            await node.failed("vera")
        assert await first.retry_after("vera") == 0 and await second.retry_after("vera") == 0
        await second.failed("vera")  # the fourth failure, counting both nodes
        for node in (first, second):
            assert 299.0 < await node.retry_after("vera") <= 300.0
        assert await first.retry_after("anna") == 0
        # No username in clear in Redis, and the keys expire with the window.
        keys = [k.decode() async for k in redis.scan_iter(match=f"{prefix}*")]
        assert len(keys) == 1 and "vera" not in keys[0]
        assert 0 < await redis.pttl(keys[0]) <= 300_000
        await first.succeeded("vera")  # a successful login on one node clears it for all
        assert await second.retry_after("vera") == 0
    finally:
        await other.aclose()


async def test_redis_failures_age_out_of_the_window(redis: Redis, prefix: str) -> None:
    clock = FakeClock()
    throttle = RedisThrottle(redis, prefix=prefix, max_failures=2, window=60.0, clock=clock)
    await throttle.failed("10.0.0.7")
    clock.advance(30)
    await throttle.failed("10.0.0.7")
    assert await throttle.retry_after("10.0.0.7") == pytest.approx(30.0)
    clock.advance(30)
    assert await throttle.retry_after("10.0.0.7") == 0  # the first failure has aged out
    await throttle.failed("10.0.0.7")
    assert await throttle.retry_after("10.0.0.7") == pytest.approx(30.0)


async def test_with_redis_down_a_node_throttles_on_its_own_counts_and_says_so() -> None:
    dead = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.5)
    try:
        throttle = RedisThrottle(dead, prefix="{down}:auth:", max_failures=3, window=300.0)
        with capture_logs() as logs:
            for _ in range(3):
                assert await throttle.retry_after("vera") == 0
                await throttle.failed("vera")
            assert 299.0 < await throttle.retry_after("vera") <= 300.0  # not fail-open
        assert any(r["event"] == "auth_throttle_redis_unavailable" for r in logs)
    finally:
        await dead.aclose()


@pytest.fixture
async def two_nodes(
    aiohttp_client: Any,
    settings: Settings,
    db: Database,
    issuer: TokenIssuer,
    users: dict[str, str],
    redis: Redis,
    prefix: str,
) -> list[Any]:
    """Clients of two nodes' authorization servers, their throttles in one Redis."""
    clients = []
    for _ in range(2):
        server = OAuthServer(
            settings,
            db,
            issuer,
            TokenVerifier(settings, issuer.keys),
            throttle=RedisThrottle(redis, prefix=prefix + "acct:"),
            ip_throttle=RedisThrottle(redis, prefix=prefix + "ip:", max_failures=6),
        )
        app = web.Application()
        app.add_routes(oauth_routes(server))
        clients.append(await aiohttp_client(app))
    return clients


async def test_password_guessing_spread_over_two_nodes_is_throttled_per_account(
    two_nodes: list[Any],
) -> None:
    for attempt in range(5):
        failed, _ = await login(two_nodes[attempt % 2], password="guess")
        assert failed.status == 401
    for node in two_nodes:
        locked, _ = await login(node)  # the right password, on either node
        assert locked.status == 429 and "Location" not in locked.headers
        assert 1 <= int(locked.headers["Retry-After"]) <= 300


async def test_code_guessing_spread_over_two_nodes_is_throttled_per_address(
    two_nodes: list[Any],
) -> None:
    statuses = [(await exchange(two_nodes[n % 2], f"guess-{n}", "v" * 43)).status for n in range(6)]
    assert statuses == [400] * 6
    for node in two_nodes:
        throttled = await exchange(node, "guess-7", "v" * 43)
        assert throttled.status == 429
        assert (await throttled.json())["error"] == "slow_down"
        assert 1 <= int(throttled.headers["Retry-After"]) <= 300


async def test_a_cluster_node_counts_auth_failures_in_the_clusters_redis(tmp_path: Path) -> None:
    from propdev.node import Node

    settings = Settings.from_env(
        {
            "PROPDEV_DATA_DIR": str(tmp_path),
            "PROPDEV_REDIS_URL": REDIS_URL,
            "PROPDEV_REDIS_PREFIX": "throttle-test",
            "PROPDEV_NODE_ID": "n1",
            "PROPDEV_AUTH_FAILURES_PER_IP": "7",
        }
    )
    node = Node(settings)
    try:
        assert node.cluster is not None
        account, address = node.oauth.throttle, node.oauth.ip_throttle
        assert isinstance(account, RedisThrottle) and isinstance(address, RedisThrottle)
        assert account.redis is node.cluster.redis and address.redis is node.cluster.redis
        assert account.prefix == "{throttle-test}:auth:acct:"
        assert address.prefix == "{throttle-test}:auth:ip:" and address.max_failures == 7
    finally:
        if node.cluster is not None:
            await node.cluster.redis.aclose()
        await node.db.close()
    embedded = Node(Settings.from_env({"PROPDEV_DATA_DIR": str(tmp_path / "solo")}))
    try:
        assert isinstance(embedded.oauth.throttle, LocalThrottle)
        assert isinstance(embedded.oauth.ip_throttle, LocalThrottle)
    finally:
        await embedded.db.close()
