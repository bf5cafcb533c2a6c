"""Failure throttles and sign-in throttling: each test runs on the in-process implementation
and on the one shared through the real Redis."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from redis.asyncio import Redis
from structlog.testing import capture_logs

from propdev.config.settings import Settings
from propdev.http.middlewares import request_context_middleware
from propdev.http.routes.oauth import oauth_routes
from propdev.security import (
    Backoff,
    Ceiling,
    FailureThrottle,
    LocalThrottle,
    OAuthServer,
    RedisThrottle,
    SignInThrottle,
    TokenIssuer,
    TokenVerifier,
    create_user,
)
from propdev.storage import Database
from tests.unit.security.conftest import PASSWORD, FakeClock
from tests.unit.security.helpers import code_for, exchange, login, refresh

REDIS_URL = "redis://127.0.0.1:6379/0"

# Sign-ins here are about throttling, not hashing.
pytestmark = pytest.mark.usefixtures("cheap_passwords")

MakeThrottle = Callable[..., FailureThrottle]
MakeSignIn = Callable[..., SignInThrottle]


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


@pytest.fixture(params=["local", "redis"])
def make_throttle(request: pytest.FixtureRequest, redis: Redis, prefix: str) -> MakeThrottle:
    """Builds a throttle of either implementation on the given rule and clock."""

    def make(rule: Backoff | Ceiling, clock: FakeClock, name: str = "t") -> FailureThrottle:
        if request.param == "local":
            return LocalThrottle(rule, clock=clock)
        return RedisThrottle(redis, rule, prefix=f"{prefix}{name}:", clock=clock)

    return make


@pytest.fixture(params=["local", "redis"])
def make_sign_in(request: pytest.FixtureRequest, redis: Redis, prefix: str) -> MakeSignIn:
    """Builds a sign-in throttle in this process or in Redis (a cluster's)."""

    def make(per_address: int, clock: FakeClock) -> SignInThrottle:
        if request.param == "local":
            return SignInThrottle.local(per_address, clock=clock)
        return SignInThrottle.shared(redis, prefix=prefix, per_address=per_address, clock=clock)

    return make


# -- the two rules, on both implementations ------------------------------------------------


async def test_a_ceiling_locks_a_key_until_its_oldest_failure_ages_out(
    make_throttle: MakeThrottle,
) -> None:
    clock = FakeClock()
    throttle = make_throttle(Ceiling(3, 60.0), clock)
    for _ in range(2):
        assert await throttle.failed("vera") == 0
        clock.advance(10)
    assert await throttle.retry_after("vera") == 0
    assert await throttle.failed("vera") == pytest.approx(40.0)
    assert await throttle.retry_after("vera") == pytest.approx(40.0)  # first failure + 60 s
    assert await throttle.retry_after("anna") == 0
    clock.advance(40)
    assert await throttle.retry_after("vera") == 0
    await throttle.failed("vera")
    assert await throttle.retry_after("vera") == pytest.approx(10.0)
    await throttle.succeeded("vera")
    assert await throttle.retry_after("vera") == 0


async def test_a_ceiling_of_no_failures_is_off(make_throttle: MakeThrottle) -> None:
    throttle = make_throttle(Ceiling(0, 60.0), FakeClock())
    for _ in range(10):
        await throttle.failed("vera")
    assert await throttle.retry_after("vera") == 0


async def test_back_off_doubles_with_each_failure_up_to_its_cap(
    make_throttle: MakeThrottle,
) -> None:
    clock = FakeClock()
    throttle = make_throttle(Backoff(free=3, base=10.0, cap=40.0, window=3600.0), clock)
    for _ in range(2):
        assert await throttle.failed("vera") == 0  # free
    waits = []
    for _ in range(5):
        waits.append(await throttle.failed("vera"))
        assert await throttle.retry_after("vera") == pytest.approx(waits[-1])
        clock.advance(waits[-1])  # tries again as soon as allowed, and fails
        assert await throttle.retry_after("vera") == 0
    assert waits == pytest.approx([10.0, 20.0, 40.0, 40.0, 40.0])
    assert await throttle.retry_after("anna") == 0


async def test_back_off_forgets_failures_older_than_its_window(
    make_throttle: MakeThrottle,
) -> None:
    clock = FakeClock()
    throttle = make_throttle(Backoff(free=2, base=10.0, cap=40.0, window=100.0), clock)
    await throttle.failed("vera")
    assert await throttle.failed("vera") == pytest.approx(10.0)
    clock.advance(100)
    assert await throttle.retry_after("vera") == 0
    assert await throttle.failed("vera") == 0  # one failure in the window again: free
    await throttle.succeeded("vera")
    assert await throttle.failed("vera") == 0


# -- sign-in throttling, on both implementations ---------------------------------------------


async def test_token_failures_never_block_a_password_login(make_sign_in: MakeSignIn) -> None:
    throttle = make_sign_in(20, FakeClock())
    for _ in range(20):
        await throttle.token_failed("203.0.113.9")
    assert not await throttle.login_wait("carol", "203.0.113.9")
    wait = await throttle.token_wait("203.0.113.9")
    assert wait.scope == "address" and 299.0 < wait.seconds <= 300.0
    assert not await throttle.token_wait("198.51.100.1")


async def test_other_accounts_failing_from_one_address_do_not_lock_an_account_out(
    make_sign_in: MakeSignIn,
) -> None:
    throttle = make_sign_in(200, FakeClock())
    for account in ("vera", "pavel", "olga"):
        for _ in range(5):
            await throttle.login_failed(account, "203.0.113.9")
        wait = await throttle.login_wait(account, "203.0.113.9")
        assert wait.scope == "account" and wait.seconds == pytest.approx(60.0)
    assert not await throttle.login_wait("carol", "203.0.113.9")  # same address, other account
    assert not await throttle.login_wait("vera", "198.51.100.1")  # same account, elsewhere


async def test_the_account_back_off_grows_and_a_success_ends_it(make_sign_in: MakeSignIn) -> None:
    clock = FakeClock()
    throttle = make_sign_in(200, clock)
    waits = []
    for n in range(13):  # a guesser spread over many addresses, each trying when allowed
        wait = await throttle.login_failed("vera", f"198.51.100.{n}")
        waits.append(wait.seconds)
        clock.advance(wait.seconds)
    assert waits[:9] == [0.0] * 9
    assert waits[9:] == pytest.approx([60.0, 120.0, 240.0, 480.0])
    await throttle.login_failed("vera", "198.51.100.99")
    assert (await throttle.login_wait("vera", "192.0.2.1")).seconds == pytest.approx(900.0)  # cap
    clock.advance(900)
    await throttle.login_succeeded("vera", "192.0.2.1")
    assert not await throttle.login_failed("vera", "192.0.2.1")  # the first of a new run: free


async def test_the_address_ceiling_stops_a_spray_over_many_accounts(
    make_sign_in: MakeSignIn,
) -> None:
    throttle = make_sign_in(10, FakeClock())
    for n in range(10):  # one guess per account: no account or pair is in back-off
        await throttle.login_failed(f"user{n}", "203.0.113.9")
        assert not await throttle.login_wait(f"user{n}", "198.51.100.1")
    wait = await throttle.login_wait("someone-else", "203.0.113.9")
    assert wait.scope == "address" and 299.0 < wait.seconds <= 300.0
    assert not await throttle.login_wait("someone-else", "198.51.100.1")


# -- through the authorization server's routes ----------------------------------------------


@pytest.fixture
async def residents(db: Database, users: dict[str, str]) -> list[str]:
    for name in ("bob", "carol"):
        await create_user(db, username=name, password=PASSWORD, roles=["resident"])
    return ["alice", "bob", "carol"]


@pytest.fixture
async def sign_in_client(
    aiohttp_client: Any,
    settings: Settings,
    db: Database,
    issuer: TokenIssuer,
    verifier: TokenVerifier,
    clock: FakeClock,
    residents: list[str],
    make_sign_in: MakeSignIn,
) -> Any:
    """The authorization server with the default per-address ceiling, in either throttle."""
    throttle = make_sign_in(settings.auth_failures_per_ip, clock)
    server = OAuthServer(settings, db, issuer, verifier, clock=clock, throttle=throttle)
    app = web.Application(middlewares=[request_context_middleware(node_id="test")])
    app.add_routes(oauth_routes(server))
    return await aiohttp_client(app)


async def test_bogus_refreshes_from_an_address_lock_no_one_else_out(sign_in_client: Any) -> None:
    client = sign_in_client
    code, code_verifier = await code_for(client, username="bob")
    bobs = await (await exchange(client, code, code_verifier)).json()
    for n in range(20):  # someone behind the same address sends bogus refresh tokens
        bogus = await refresh(client, f"bogus-{n}-" + "x" * 40)
        assert bogus.status == 400 and (await bogus.json())["error"] == "invalid_grant"
    renewed = await refresh(client, bobs["refresh_token"])  # another resident's valid refresh
    assert renewed.status == 200, await renewed.text()
    signed_in, _ = await login(client, username="carol")  # a third resident's password
    assert signed_in.status == 303 and "code=" in signed_in.headers["Location"]


async def test_a_correct_password_works_while_other_accounts_are_in_back_off(
    sign_in_client: Any,
) -> None:
    client = sign_in_client
    for account in ("alice", "bob"):
        for _ in range(5):
            assert (await login(client, username=account, password="guess"))[0].status == 401
        locked, _ = await login(client, username=account)  # its own right password: waits
        assert locked.status == 429 and "Location" not in locked.headers
        assert int(locked.headers["Retry-After"]) == 60
        assert "Too many failed attempts for this account" in await locked.text()
    carol, _ = await login(client, username="carol")
    assert carol.status == 303


async def test_the_login_page_says_when_the_address_is_throttled(
    aiohttp_client: Any,
    settings: Settings,
    db: Database,
    issuer: TokenIssuer,
    verifier: TokenVerifier,
    clock: FakeClock,
    residents: list[str],
) -> None:
    server = OAuthServer(
        settings, db, issuer, verifier, clock=clock, throttle=SignInThrottle.local(3, clock=clock)
    )
    app = web.Application(middlewares=[request_context_middleware(node_id="test")])
    app.add_routes(oauth_routes(server))
    client = await aiohttp_client(app)
    for account in ("alice", "bob", "nobody"):
        assert (await login(client, username=account, password="guess"))[0].status == 401
    refused, _ = await login(client, username="carol")
    assert refused.status == 429 and 1 <= int(refused.headers["Retry-After"]) <= 300
    assert "Too many failed sign-ins from your network" in await refused.text()


# -- a cluster: two nodes, one Redis ------------------------------------------------------------


async def test_two_nodes_throttles_see_each_others_failures(redis: Redis, prefix: str) -> None:
    other = Redis.from_url(REDIS_URL)  # the second node has its own connection pool
    try:
        first = RedisThrottle(redis, Ceiling(4, 300.0), prefix=prefix)
        second = RedisThrottle(other, Ceiling(4, 300.0), prefix=prefix)
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


async def test_with_redis_down_a_node_throttles_on_its_own_counts_and_says_so() -> None:
    dead = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.5)
    try:
        throttle = RedisThrottle(dead, Ceiling(3, 300.0), prefix="{down}:auth:")
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
            throttle=SignInThrottle.shared(redis, prefix=prefix, per_address=6),
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
        assert 1 <= int(locked.headers["Retry-After"]) <= 60


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
    signed_in, _ = await login(two_nodes[0])  # the token bucket is not the login's
    assert signed_in.status == 303


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
        throttle = node.oauth.throttle
        buckets = {
            "pair": throttle.pair,
            "acct": throttle.account,
            "ip": throttle.address,
            "token": throttle.token,
        }
        for name, bucket in buckets.items():
            assert isinstance(bucket, RedisThrottle) and bucket.redis is node.cluster.redis
            assert bucket.prefix == f"{{throttle-test}}:auth:{name}:"
        assert throttle.address.rule == Ceiling(7, 300.0) == throttle.token.rule
    finally:
        if node.cluster is not None:
            await node.cluster.redis.aclose()
        await node.db.close()
    embedded = Node(Settings.from_env({"PROPDEV_DATA_DIR": str(tmp_path / "solo")}))
    try:
        assert isinstance(embedded.oauth.throttle.account, LocalThrottle)
        assert embedded.oauth.throttle.address.rule == Ceiling(200, 300.0)  # the default
    finally:
        await embedded.db.close()
