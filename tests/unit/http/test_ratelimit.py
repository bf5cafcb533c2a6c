"""The rate-limit middleware on a small aiohttp app: 429 problems with ``Retry-After`` and
``RateLimit-Policy``, the per-client, per-address and per-route rules, and one budget for two
nodes on the same Redis namespace.

The local limiter runs on a hand-moved clock, so a budget refills only when a test says so.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis

from propdev.http.middlewares import request_context_middleware
from propdev.http.ratelimit import Limiter, LocalLimiter, RedisLimiter, rate_limit_middleware

Client = TestClient[web.Request, web.Application]
ClientFactory = Callable[[web.Application], Awaitable[Client]]
REDIS_URL = "redis://127.0.0.1:6379/0"
SUBJECT = "X-Test-Subject"  # stands for the authenticated caller's ``sub`` in these tests


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def limited_app(rate: float, limiter: Limiter) -> web.Application:
    """Every route answers 200; the subject is what the test's header says (none: anonymous)."""

    async def ok(request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    app = web.Application(
        middlewares=[
            request_context_middleware(node_id="n1"),  # renders the 429 problem
            rate_limit_middleware(
                rate=rate, limiter=limiter, subject=lambda r: r.headers.get(SUBJECT)
            ),
        ]
    )
    app.router.add_get("/api/v1/things", ok)
    app.router.add_post("/api/v1/access-points/{id}/open", ok)
    app.router.add_post("/oauth/token", ok)
    app.router.add_get("/healthz", ok)
    app.router.add_get("/metrics", ok)
    return app


async def statuses(client: Client, method: str, path: str, n: int, sub: str | None) -> list[int]:
    headers = {SUBJECT: sub} if sub is not None else {}
    found = []
    for _ in range(n):
        async with client.request(method, path, headers=headers) as resp:
            found.append(resp.status)
    return found


@pytest.fixture
def clock() -> Clock:
    return Clock()


async def test_past_the_client_burst_a_request_is_a_429_problem_with_retry_after_and_policy(
    aiohttp_client: ClientFactory, clock: Clock
) -> None:
    client = await aiohttp_client(limited_app(1.0, LocalLimiter(clock=clock)))
    assert await statuses(client, "GET", "/api/v1/things", 2, "anna") == [200, 200]  # burst 2

    async with client.get("/api/v1/things", headers={SUBJECT: "anna"}) as resp:
        assert resp.status == 429
        assert resp.content_type == "application/problem+json"
        assert resp.headers["Retry-After"] == "1"  # one request per second refills in 1 s
        assert resp.headers["RateLimit-Policy"] == '"client";q=2;w=1'
        problem = await resp.json()
    assert problem["status"] == 429 and problem["type"].endswith("/rate-limited")

    clock.now += 1.0
    assert await statuses(client, "GET", "/api/v1/things", 2, "anna") == [200, 429]


async def test_the_client_is_the_subject_when_authenticated_else_the_address(
    aiohttp_client: ClientFactory, clock: Clock
) -> None:
    client = await aiohttp_client(limited_app(1.0, LocalLimiter(clock=clock)))
    assert await statuses(client, "GET", "/api/v1/things", 3, "anna") == [200, 200, 429]
    # Another subject from the same address has a budget of its own ...
    assert await statuses(client, "GET", "/api/v1/things", 3, "boris") == [200, 200, 429]
    # ... and so do the anonymous callers of that address, together.
    assert await statuses(client, "GET", "/api/v1/things", 3, None) == [200, 200, 429]


async def test_many_subjects_behind_one_address_share_its_address_budget(
    aiohttp_client: ClientFactory, clock: Clock
) -> None:
    client = await aiohttp_client(limited_app(1.0, LocalLimiter(clock=clock)))
    # "ip": five times the client rate, bursts of ten, whoever the caller.
    for n in range(10):
        assert await statuses(client, "GET", "/api/v1/things", 1, f"user-{n}") == [200]
    async with client.get("/api/v1/things", headers={SUBJECT: "user-10"}) as resp:
        assert resp.status == 429
        assert resp.headers["RateLimit-Policy"] == '"ip";q=10;w=1'


async def test_token_requests_have_the_stricter_auth_rule_per_address(
    aiohttp_client: ClientFactory, clock: Clock
) -> None:
    client = await aiohttp_client(limited_app(2.0, LocalLimiter(clock=clock)))
    # "auth": half the client rate, bursts of the client rate (2); the client's burst is 4.
    assert await statuses(client, "POST", "/oauth/token", 2, None) == [200, 200]
    async with client.post("/oauth/token") as resp:
        assert resp.status == 429
        assert resp.headers["RateLimit-Policy"] == '"auth";q=2;w=1'
        assert resp.headers["Retry-After"] == "1"
    # Other routes of the same address are still within the client budget.
    assert await statuses(client, "GET", "/api/v1/things", 1, None) == [200]


async def test_opens_have_the_stricter_open_rule_per_subject(
    aiohttp_client: ClientFactory, clock: Clock
) -> None:
    client = await aiohttp_client(limited_app(5.0, LocalLimiter(clock=clock)))
    open_door = "/api/v1/access-points/ap-1/open"
    # "open": a fifth of the client rate (one a second), bursts of the client rate (5).
    assert await statuses(client, "POST", open_door, 5, "anna") == [200] * 5
    async with client.post(open_door, headers={SUBJECT: "anna"}) as resp:
        assert resp.status == 429
        assert resp.headers["RateLimit-Policy"] == '"open";q=5;w=1'
        assert resp.headers["Retry-After"] == "1"
    assert await statuses(client, "POST", open_door, 1, "boris") == [200]  # his own budget
    assert await statuses(client, "GET", "/api/v1/things", 1, "anna") == [200]  # not an open


async def test_health_and_metrics_are_never_limited(
    aiohttp_client: ClientFactory, clock: Clock
) -> None:
    client = await aiohttp_client(limited_app(1.0, LocalLimiter(clock=clock)))
    assert await statuses(client, "GET", "/healthz", 20, None) == [200] * 20
    assert await statuses(client, "GET", "/metrics", 20, None) == [200] * 20
    assert await statuses(client, "GET", "/api/v1/things", 3, None) == [200, 200, 429]


async def test_a_rate_of_zero_turns_the_limits_off(
    aiohttp_client: ClientFactory, clock: Clock
) -> None:
    client = await aiohttp_client(limited_app(0.0, LocalLimiter(clock=clock)))
    assert await statuses(client, "POST", "/oauth/token", 20, None) == [200] * 20


@pytest.fixture
async def prefix() -> AsyncIterator[str]:
    """A Redis key prefix of this test only; its keys are deleted afterwards."""
    name = "{test-rl-" + uuid.uuid4().hex[:10] + "}:rl:"
    yield name
    redis = Redis.from_url(REDIS_URL)
    try:
        keys = [k async for k in redis.scan_iter(match=f"{name}*")]
        if keys:
            await redis.delete(*keys)
    finally:
        await redis.aclose()


async def test_two_nodes_on_one_redis_namespace_share_one_budget(
    aiohttp_client: ClientFactory, prefix: str
) -> None:
    first, second = Redis.from_url(REDIS_URL), Redis.from_url(REDIS_URL)  # one per node
    try:
        # Half a request per second: a client's burst is one request, the next one comes 2 s
        # later (Redis's clock: the other node asks within milliseconds).
        node_a = await aiohttp_client(limited_app(0.5, RedisLimiter(first, prefix=prefix)))
        node_b = await aiohttp_client(limited_app(0.5, RedisLimiter(second, prefix=prefix)))
        other_cluster = prefix.replace("}", "-other}")
        apart = await aiohttp_client(limited_app(0.5, RedisLimiter(second, prefix=other_cluster)))

        assert await statuses(node_a, "GET", "/api/v1/things", 1, "anna") == [200]
        async with node_b.get("/api/v1/things", headers={SUBJECT: "anna"}) as resp:
            assert resp.status == 429  # anna spent the cluster's budget at node A
            assert resp.headers["RateLimit-Policy"] == '"client";q=1;w=1'
            assert int(resp.headers["Retry-After"]) >= 1
        assert await statuses(node_b, "GET", "/api/v1/things", 1, "boris") == [200]
        assert await statuses(apart, "GET", "/api/v1/things", 1, "anna") == [200]
    finally:
        await first.aclose()
        await second.aclose()
