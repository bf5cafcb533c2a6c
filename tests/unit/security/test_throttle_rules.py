"""The throttle's two rules as numbers, the local store's window, size and ``keep``, and the
Redis store's contract with its scripts: keys, arguments, replies, fallback and logging."""

from __future__ import annotations

import hashlib
import math
from typing import Any

import pytest
from structlog.testing import capture_logs

from propdev.security import Backoff, Ceiling, LocalThrottle, RedisThrottle
from tests.unit.security.conftest import FakeClock


def test_a_ceiling_remembers_as_many_failures_as_it_allows_and_none_when_off() -> None:
    assert Ceiling(3).keep == 3
    assert Ceiling(0).keep == 0 and Ceiling(-2).keep == 0
    assert Ceiling(3).window == 300.0


def test_a_ceiling_waits_from_its_oldest_counted_failure() -> None:
    rule = Ceiling(2, 60.0)
    assert rule.wait([100.0], 100.0) == 0.0
    assert rule.wait([90.0, 100.0], 100.0) == 50.0
    assert rule.wait([10.0, 90.0, 100.0], 100.0) == 50.0  # the newest two decide
    assert rule.wait([30.0, 40.0], 100.0) == 0.0
    assert Ceiling(0, 60.0).wait([99.0, 100.0], 100.0) == 0.0


def test_a_back_off_remembers_only_the_failures_that_still_raise_its_wait() -> None:
    rule = Backoff(free=5, base=60.0, cap=900.0)
    assert rule.keep == 5 + math.ceil(math.log2(900 / 60))  # 9
    assert Backoff(free=3, base=60.0, cap=60.0).keep == 3
    assert Backoff(free=0).keep == 0
    assert Backoff().window == 86400.0


def test_a_back_off_is_free_then_doubles_from_its_base_up_to_its_cap() -> None:
    rule = Backoff(free=3, base=10.0, cap=100.0)
    assert [rule.delay(n) for n in range(8)] == [0, 0, 0, 10, 20, 40, 80, 100]
    assert rule.delay(10_000) == 100.0  # no overflow on a long run
    assert isinstance(rule.delay(4), float)
    assert Backoff(free=0).delay(10) == 0.0
    assert [Backoff(free=1, base=10.0, cap=100.0).delay(n) for n in range(3)] == [0, 10, 20]


def test_a_back_off_waits_from_the_last_failure() -> None:
    rule = Backoff(free=2, base=10.0, cap=100.0)
    assert rule.wait([], 50.0) == 0.0
    assert rule.wait([40.0], 50.0) == 0.0
    assert rule.wait([40.0, 45.0], 50.0) == 5.0  # 45 + 10 - 50
    assert rule.wait([10.0, 20.0], 50.0) == 0.0


def test_the_local_store_forgets_a_failure_once_it_is_a_window_old() -> None:
    clock = FakeClock(1000.0)
    throttle = LocalThrottle(Ceiling(1, 60.0), clock=clock)
    assert throttle.failed_now("k") == 60.0
    clock.advance(59.5)
    assert throttle.retry_after_now("k") == pytest.approx(0.5)
    clock.advance(0.5)  # exactly a window old: forgotten
    assert throttle.retry_after_now("k") == 0.0
    assert throttle.failed_now("k") == 60.0  # and not counted with the new one


def test_the_local_store_keeps_only_the_newest_failures_its_rule_needs() -> None:
    clock = FakeClock(0.0)
    throttle = LocalThrottle(Ceiling(2, 1000.0), clock=clock)
    for _ in range(5):
        clock.advance(1.0)
        throttle.failed_now("k")
    assert throttle._failures["k"] == [4.0, 5.0]


def test_the_local_store_forgets_the_key_that_failed_least_recently_past_its_capacity() -> None:
    clock = FakeClock(0.0)
    throttle = LocalThrottle(Ceiling(1, 1000.0), capacity=2, clock=clock)
    throttle.failed_now("a")
    throttle.failed_now("b")
    throttle.failed_now("a")  # "a" failed again: now "b" is the oldest
    throttle.failed_now("c")
    assert list(throttle._failures) == ["a", "c"]
    assert throttle.retry_after_now("b") == 0.0
    assert LocalThrottle(Ceiling(1)).capacity == 100_000


async def test_the_local_store_forgets_a_key_that_succeeded() -> None:
    throttle = LocalThrottle(Ceiling(1, 60.0), clock=FakeClock(0.0))
    assert await throttle.failed("k") == 60.0
    assert await throttle.retry_after("k") == 60.0
    await throttle.succeeded("k")
    assert await throttle.retry_after("k") == 0.0
    await throttle.succeeded("never-failed")


async def test_a_rule_that_is_off_counts_nothing_locally() -> None:
    throttle = LocalThrottle(Ceiling(0), clock=FakeClock(0.0))
    assert await throttle.failed("k") == 0.0
    assert await throttle.retry_after("k") == 0.0
    assert throttle._failures == {}


class Script:
    def __init__(self, owner: FakeRedis, source: str) -> None:
        self.owner = owner
        self.source = source
        self.calls: list[tuple[list[str], list[Any]]] = []

    async def __call__(self, *, keys: list[str], args: list[Any]) -> Any:
        self.calls.append((keys, args))
        if self.owner.down:
            raise ConnectionError("down")
        return self.owner.reply


class FakeRedis:
    """``register_script`` and ``delete``, answering ``reply`` (or failing while ``down``)."""

    def __init__(self, reply: list[Any] | None = None) -> None:
        self.reply = reply or [0]
        self.down = False
        self.scripts: list[Script] = []
        self.deleted: list[str] = []

    def register_script(self, source: str) -> Script:
        self.scripts.append(Script(self, source))
        return self.scripts[-1]

    async def delete(self, key: str) -> int:
        if self.down:
            raise ConnectionError("down")
        self.deleted.append(key)
        return 1

    @property
    def failed(self) -> Script:
        return next(s for s in self.scripts if "ZADD" in s.source)

    @property
    def retry(self) -> Script:
        return next(s for s in self.scripts if "ZADD" not in s.source)


def hashed(prefix: str, key: str) -> str:
    return prefix + hashlib.sha256(key.encode()).hexdigest()[:32]


async def test_redis_keys_are_hashed_and_the_scripts_get_window_keep_and_the_servers_clock() -> (
    None
):
    redis = FakeRedis([1_000_000, 999_000, 999_500])
    throttle = RedisThrottle(redis, Ceiling(2, 60.0), prefix="{p}:acct:")
    assert await throttle.retry_after("vera") == pytest.approx(59.0)  # oldest 999 s + 60 - 1000
    assert redis.retry.calls == [([hashed("{p}:acct:", "vera")], [60_000, 2, 0])]
    assert await throttle.failed("vera") == pytest.approx(59.0)
    [(keys, args)] = redis.failed.calls
    assert keys == [hashed("{p}:acct:", "vera")] and args[:3] == [60_000, 2, 0]
    await throttle.failed("vera")
    assert redis.failed.calls[1][1][3] != args[3] and len(args[3]) == 32  # one member each


async def test_a_test_clock_is_sent_in_whole_milliseconds() -> None:
    redis = FakeRedis([1_000])
    throttle = RedisThrottle(redis, Ceiling(2, 1.5), prefix="p:", clock=lambda: 12.3456)
    await throttle.retry_after("k")
    assert redis.retry.calls[0][1] == [1500, 2, 12345]


async def test_failures_are_also_counted_locally_for_an_outage_to_come() -> None:
    redis = FakeRedis([1_000_000, 999_000])
    fallback = LocalThrottle(Ceiling(1, 60.0), clock=FakeClock(0.0))
    throttle = RedisThrottle(redis, Ceiling(1, 60.0), prefix="p:", fallback=fallback)
    assert throttle.fallback is fallback
    assert await throttle.failed("k") == pytest.approx(59.0)  # Redis's answer while it is up
    assert fallback.retry_after_now("k") == 60.0


async def test_with_redis_down_the_local_counts_decide_and_it_is_logged() -> None:
    redis = FakeRedis()
    redis.down = True
    throttle = RedisThrottle(redis, Ceiling(1, 60.0), prefix="p:")
    throttle.fallback.clock = FakeClock(0.0)
    with capture_logs() as logs:
        assert await throttle.failed("k") == 60.0
        assert await throttle.retry_after("k") == 60.0
        await throttle.succeeded("k")
    assert await throttle.retry_after("k") == 0.0
    assert [e["event"] for e in logs] == ["auth_throttle_redis_unavailable"] * 3
    assert {e["error"] for e in logs} == {"ConnectionError"}
    assert all(e["log_level"] == "warning" for e in logs)


async def test_a_success_forgets_the_key_here_and_in_redis() -> None:
    redis = FakeRedis([1_000_000, 999_000])
    throttle = RedisThrottle(redis, Ceiling(1, 60.0), prefix="p:")
    throttle.fallback.clock = FakeClock(0.0)
    await throttle.failed("k")
    await throttle.succeeded("k")
    assert redis.deleted == [hashed("p:", "k")]
    assert throttle.fallback.retry_after_now("k") == 0.0


async def test_a_rule_that_is_off_never_asks_redis() -> None:
    redis = FakeRedis()
    throttle = RedisThrottle(redis, Backoff(free=0), prefix="p:")
    assert await throttle.failed("k") == 0.0
    assert await throttle.retry_after("k") == 0.0
    assert redis.failed.calls == [] and redis.retry.calls == []
