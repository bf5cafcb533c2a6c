"""GCRA, the in-process limiter, the Redis limiter's wire contract and fallback, the policy and
the middleware: which keys and rules a request is counted under, and what a refusal says."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from structlog.testing import capture_logs

from propdev.http.errors import TooManyRequestsError
from propdev.http.ratelimit import (
    Decision,
    LocalLimiter,
    Policy,
    RedisLimiter,
    Rule,
    gcra,
    rate_limit_middleware,
)

TEN = Rule("t", 10.0, 3.0)  # one request every 0.1 s, bursts of 3


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_gcra_allows_a_burst_then_says_exactly_how_long_to_wait() -> None:
    tat = None
    for _ in range(3):
        decision, tat = gcra(tat, 5.0, TEN)
        assert decision == Decision(True, 0.0)
    assert tat == pytest.approx(5.3)
    refused, unchanged = gcra(tat, 5.0, TEN)
    assert refused.allowed is False and unchanged is None
    assert refused.retry_after == pytest.approx(0.1)
    again, later = gcra(tat, 5.1, TEN)
    assert again.allowed and later == pytest.approx(5.4)


def test_gcra_does_not_bank_idle_time_beyond_the_burst() -> None:
    decision, tat = gcra(1.0, 50.0, TEN)  # an old arrival time counts from now
    assert decision.allowed and tat == pytest.approx(50.1)


def test_a_rule_of_one_per_second_without_burst_allows_one_request_per_second() -> None:
    rule = Rule("one", 1.0, 1.0)
    assert rule.interval == 1.0
    first, tat = gcra(None, 0.0, rule)
    second, _ = gcra(tat, 0.5, rule)
    assert first.allowed and not second.allowed and second.retry_after == pytest.approx(0.5)


def test_the_local_limiter_counts_each_key_and_each_rule_apart() -> None:
    clock = Clock()
    limiter = LocalLimiter(clock=clock)
    assert [limiter.hit_now("a", TEN).allowed for _ in range(4)] == [True, True, True, False]
    assert limiter.hit_now("b", TEN).allowed
    assert limiter.hit_now("a", Rule("other", 10.0, 3.0)).allowed
    clock.now += 0.1
    assert limiter.hit_now("a", TEN).allowed
    assert not limiter.hit_now("a", TEN).allowed


async def test_the_local_limiter_answers_the_same_through_its_async_interface() -> None:
    limiter = LocalLimiter(clock=Clock())
    answers = [(await limiter.hit("k", TEN)).allowed for _ in range(4)]
    assert answers == [True, True, True, False]
    assert (await limiter.hit("other", TEN)).allowed


def test_the_local_limiter_keeps_two_hundred_thousand_keys_by_default() -> None:
    assert LocalLimiter().max_keys == 200_000


def test_the_local_limiter_forgets_the_least_recently_used_key_past_its_size() -> None:
    clock = Clock()
    limiter = LocalLimiter(max_keys=2, clock=clock)
    for _ in range(3):
        limiter.hit_now("a", TEN)
        limiter.hit_now("b", TEN)
    assert not limiter.hit_now("a", TEN).allowed  # a refused hit still makes "a" recent
    limiter.hit_now("c", TEN)  # "b" is now the least recently used: forgotten
    assert limiter.hit_now("b", TEN).allowed
    assert list(limiter._tat) == ["t:c", "t:b"]  # and "b" pushed out "a" in turn


def test_the_local_limiter_keeps_at_most_its_size() -> None:
    limiter = LocalLimiter(max_keys=3, clock=Clock())
    for n in range(10):
        limiter.hit_now(str(n), TEN)
    assert len(limiter._tat) == 3
    assert list(limiter._tat) == ["t:7", "t:8", "t:9"]


class FakeRedis:
    """``register_script`` returning a script that records its calls and answers ``reply``."""

    def __init__(self, reply: Any) -> None:
        self.reply = reply
        self.calls: list[tuple[list[str], list[Any]]] = []
        self.source = ""

    def register_script(self, source: str) -> Any:
        self.source = source

        async def script(*, keys: list[str], args: list[Any]) -> Any:
            self.calls.append((keys, args))
            if isinstance(self.reply, Exception):
                raise self.reply
            return self.reply

        return script


async def test_the_redis_limiter_sends_its_key_interval_and_burst_and_uses_the_servers_clock() -> (
    None
):
    redis = FakeRedis([1, 0])
    limiter = RedisLimiter(redis, prefix="p:")
    assert await limiter.hit("k", TEN) == Decision(True, 0.0)
    assert redis.calls == [(["p:t:k"], [pytest.approx(100.0), 3.0, 0])]
    assert "redis.call('TIME')" in redis.source


async def test_the_redis_limiter_reads_a_refusal_and_its_wait_in_milliseconds() -> None:
    limiter = RedisLimiter(FakeRedis([0, 250]))
    decision = await limiter.hit("k", TEN)
    assert decision == Decision(False, 0.25)
    assert isinstance(decision.allowed, bool)


async def test_the_redis_limiter_has_a_default_prefix() -> None:
    redis = FakeRedis([1, 0])
    await RedisLimiter(redis).hit("k", TEN)
    assert redis.calls[0][0] == ["propdev:rl:t:k"]


async def test_with_redis_down_the_given_fallback_decides_and_it_is_logged() -> None:
    fallback = LocalLimiter(clock=Clock())
    limiter = RedisLimiter(FakeRedis(ConnectionError("down")), fallback=fallback)
    with capture_logs() as logs:
        answers = [(await limiter.hit("k", TEN)).allowed for _ in range(4)]
    assert answers == [True, True, True, False]
    assert list(fallback._tat) == ["t:k"]
    assert logs[0] == {
        "event": "rate_limit_redis_unavailable",
        "error": "ConnectionError",
        "log_level": "warning",
    }
    assert limiter.redis is not None and limiter.prefix == "propdev:rl:"
    assert limiter.fallback is fallback


async def test_with_redis_down_and_no_fallback_given_a_local_limit_still_applies() -> None:
    limiter = RedisLimiter(FakeRedis(ConnectionError("down")))
    answers = [(await limiter.hit("k", Rule("r", 0.001, 2.0))).allowed for _ in range(3)]
    assert answers == [True, True, False]


def test_the_policy_derives_every_rule_from_one_rate() -> None:
    policy = Policy.from_rate(10.0)
    assert policy.client == Rule("client", 10.0, 20.0)
    assert policy.ip == Rule("ip", 50.0, 100.0)
    assert policy.auth == Rule("auth", 5.0, 10.0)
    assert policy.open == Rule("open", 2.0, 10.0)


class Recording:
    """A limiter that refuses the rules named in ``refuse`` and records every hit."""

    def __init__(self, refuse: dict[str, float] | None = None) -> None:
        self.refuse = refuse or {}
        self.hits: list[tuple[str, str]] = []

    async def hit(self, key: str, rule: Rule) -> Decision:
        self.hits.append((key, rule.name))
        if rule.name in self.refuse:
            return Decision(False, self.refuse[rule.name])
        return Decision(True, 0.0)


async def ok(request: web.Request) -> web.StreamResponse:
    return web.Response(text="ok")


async def call(
    limiter: Recording,
    method: str,
    path: str,
    *,
    sub: str | None = None,
    remote: str | None = "198.51.100.4",
    rate: float = 10.0,
) -> web.StreamResponse:
    middleware = rate_limit_middleware(rate=rate, limiter=limiter, subject=lambda r: sub)
    request = make_mocked_request(method, path).clone(remote=remote)
    return await middleware(request, ok)


async def test_an_anonymous_request_is_counted_per_address_twice() -> None:
    limiter = Recording()
    response = await call(limiter, "GET", "/api/v1/me")
    assert response.status == 200
    assert limiter.hits == [("ip:198.51.100.4", "client"), ("198.51.100.4", "ip")]


async def test_an_authenticated_request_is_counted_per_subject_and_per_address() -> None:
    limiter = Recording()
    await call(limiter, "GET", "/api/v1/me", sub="u1")
    assert limiter.hits == [("sub:u1", "client"), ("198.51.100.4", "ip")]


async def test_a_request_without_an_address_is_counted_as_unknown() -> None:
    limiter = Recording()
    await call(limiter, "GET", "/api/v1/me", remote=None)
    assert limiter.hits == [("ip:unknown", "client"), ("unknown", "ip")]


@pytest.mark.parametrize("path", ["/oauth/token", "/oauth/authorize"])
async def test_sign_in_posts_are_also_counted_under_the_auth_rule_per_address(path: str) -> None:
    limiter = Recording()
    await call(limiter, "POST", path)
    assert limiter.hits[-1] == ("198.51.100.4", "auth")
    assert len(limiter.hits) == 3


async def test_opens_are_also_counted_under_the_open_rule_per_subject() -> None:
    limiter = Recording()
    await call(limiter, "POST", "/api/v1/access-points/ap-1/open", sub="u1")
    assert limiter.hits[-1] == ("u1", "open")
    limiter = Recording()
    await call(limiter, "POST", "/api/v1/access-points/ap-1/open")
    assert limiter.hits[-1] == ("198.51.100.4", "open")


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/oauth/token"), ("GET", "/api/v1/access-points/ap-1"), ("POST", "/api/v1/me")],
)
async def test_other_routes_get_no_route_rule(method: str, path: str) -> None:
    limiter = Recording()
    await call(limiter, method, path)
    assert [rule for _, rule in limiter.hits] == ["client", "ip"]


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics"])
async def test_health_and_metrics_are_never_limited(path: str) -> None:
    limiter = Recording(refuse={"client": 1.0})
    assert (await call(limiter, "GET", path)).status == 200
    assert limiter.hits == []


async def test_a_rate_of_zero_turns_every_limit_off() -> None:
    limiter = Recording(refuse={"client": 1.0})
    assert (await call(limiter, "GET", "/api/v1/me", rate=0)).status == 200
    assert limiter.hits == []


async def test_a_refusal_is_429_with_whole_seconds_to_wait_and_the_rule_that_refused() -> None:
    limiter = Recording(refuse={"ip": 2.2})
    with pytest.raises(TooManyRequestsError) as raised:
        await call(limiter, "GET", "/api/v1/me")
    assert raised.value.headers == {"Retry-After": "3", "RateLimit-Policy": '"ip";q=100;w=1'}
    assert limiter.hits == [("ip:198.51.100.4", "client"), ("198.51.100.4", "ip")]


async def test_a_refusal_asks_to_wait_at_least_a_second() -> None:
    limiter = Recording(refuse={"client": 0.01})
    with pytest.raises(TooManyRequestsError) as raised:
        await call(limiter, "GET", "/api/v1/me")
    assert raised.value.headers["Retry-After"] == "1"
    assert raised.value.headers["RateLimit-Policy"] == '"client";q=20;w=1'
    assert limiter.hits == [("ip:198.51.100.4", "client")]  # the first refusal ends the checks
