"""Failure throttles against brute force: failures per key, and how long a key must wait.

A throttle keeps, per key (an account's normalized username, an address, a pair of both),
the times of its recent failures, and a ``Rule`` turns them into a wait:

- ``Ceiling(max_failures, window)``: at most ``max_failures`` failures in any ``window``
  seconds (a sliding window); at the limit the key waits until its oldest counted failure
  ages out. Per-address ceilings use it.
- ``Backoff(free, base, cap, window)``: ``free`` failures cost nothing; the ``free``-th makes
  the key wait ``base`` seconds after it, and each further one doubles the wait, up to
  ``cap``. Failures older than ``window`` are forgotten. Accounts use it.

Both rules read the same record (the failure times in the window, newest last), so one pure
function per rule decides for both implementations behind ``FailureThrottle``:

- ``LocalThrottle``: this process's memory (the embedded node, and the fallback);
- ``RedisThrottle``: one sorted set per key in Redis, shared by every node of a cluster, so a
  guesser spreading attempts over the nodes is throttled as if there were one. Time is the
  Redis server's, so the nodes' clocks do not matter. Keys are hashed: no username or
  address appears in Redis.

When Redis cannot be reached, ``RedisThrottle`` falls back to its ``LocalThrottle``, which
records every failure this node sees (Redis up or not): during an outage each node throttles
what it sees itself -- at worst the limit times the number of nodes, never no limit.

How the sign-in paths combine throttles is ``propdev.security.signin``.
"""

from __future__ import annotations

import collections
import hashlib
import math
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import structlog

log = structlog.get_logger()


class Rule(Protocol):
    """How a key's recent failures become a wait."""

    @property
    def window(self) -> float:
        """Seconds a failure is remembered."""
        ...

    @property
    def keep(self) -> int:
        """How many of the newest failures decide (0: the rule is off)."""
        ...

    def wait(self, failures: Sequence[float], now: float) -> float:
        """Seconds until the key may try again; ``failures`` are the times within the
        window, oldest first, at most ``keep`` of them."""
        ...


@dataclass(frozen=True, slots=True)
class Ceiling:
    """At most ``max_failures`` failures in any ``window`` seconds (``<= 0``: off)."""

    max_failures: int
    window: float = 300.0

    @property
    def keep(self) -> int:
        return max(0, self.max_failures)

    def wait(self, failures: Sequence[float], now: float) -> float:
        if self.max_failures <= 0 or len(failures) < self.max_failures:
            return 0.0
        return max(0.0, failures[-self.max_failures] + self.window - now)


@dataclass(frozen=True, slots=True)
class Backoff:
    """``free`` failures cost nothing; then ``base`` seconds after the ``free``-th, doubling
    with each further failure, at most ``cap``; failures older than ``window`` forgotten."""

    free: int = 5
    base: float = 60.0
    cap: float = 900.0
    window: float = 86400.0

    @property
    def keep(self) -> int:
        if self.free <= 0:
            return 0
        # Past this many failures the wait is at the cap: no need to remember more.
        return self.free + max(0, math.ceil(math.log2(self.cap / self.base)))

    def delay(self, failures: int) -> float:
        """The wait after the last of ``failures`` failures."""
        if self.free <= 0 or failures < self.free:
            return 0.0
        return float(min(self.cap, self.base * 2 ** min(failures - self.free, 62)))

    def wait(self, failures: Sequence[float], now: float) -> float:
        if not failures:
            return 0.0
        return max(0.0, failures[-1] + self.delay(len(failures)) - now)


class FailureThrottle(Protocol):
    """Counts failures per key under one ``rule``; ``retry_after`` is 0 while the key may try."""

    rule: Rule

    async def retry_after(self, key: str) -> float:
        """Seconds until ``key`` may try again (0 when it may now)."""
        ...

    async def failed(self, key: str) -> float:
        """Count one failure for ``key``; returns the wait it now has."""
        ...

    async def succeeded(self, key: str) -> None:
        """Forget ``key``'s failures (a successful login)."""
        ...


class LocalThrottle:
    """This process's failure records; at most ``capacity`` keys (least recently failed
    forgotten). It counts unknown usernames too, so a wait says nothing about which accounts
    exist."""

    def __init__(
        self,
        rule: Rule,
        *,
        capacity: int = 100_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.rule = rule
        self.capacity = capacity
        self.clock = clock
        self._failures: collections.OrderedDict[str, list[float]] = collections.OrderedDict()

    def _recent(self, key: str, now: float) -> list[float]:
        window = self.rule.window
        return [t for t in self._failures.get(key, ()) if now - t < window]

    def retry_after_now(self, key: str) -> float:
        if self.rule.keep <= 0:
            return 0.0
        now = self.clock()
        return self.rule.wait(self._recent(key, now), now)

    def failed_now(self, key: str) -> float:
        keep = self.rule.keep
        if keep <= 0:
            return 0.0
        now = self.clock()
        recent = [*self._recent(key, now), now][-keep:]
        self._failures.pop(key, None)
        self._failures[key] = recent
        while len(self._failures) > self.capacity:
            self._failures.popitem(last=False)
        return self.rule.wait(recent, now)

    async def retry_after(self, key: str) -> float:
        return self.retry_after_now(key)

    async def failed(self, key: str) -> float:
        return self.failed_now(key)

    async def succeeded(self, key: str) -> None:
        self._failures.pop(key, None)


# Both scripts: KEYS[1] the key; ARGV: window (ms), failures kept, now (ms; 0: the Redis
# server's clock). Both return {now, failure times within the window, oldest first}.
_PROLOGUE_LUA = """
local window = tonumber(ARGV[1])
local keep = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
if now == 0 then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
"""

_RECENT_LUA = """
local recent = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. (now - window), '+inf', 'WITHSCORES')
local out = {now}
for i = 2, #recent, 2 do
  out[#out + 1] = recent[i]
end
return out
"""

# ARGV[4]: a unique member for this failure.
_FAILED_LUA = (
    _PROLOGUE_LUA
    + """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
redis.call('ZADD', KEYS[1], now, ARGV[4])
redis.call('ZREMRANGEBYRANK', KEYS[1], 0, -(keep + 1))
redis.call('PEXPIRE', KEYS[1], window)
"""
    + _RECENT_LUA
)

_RETRY_AFTER_LUA = _PROLOGUE_LUA + _RECENT_LUA


def _seconds(reply: list[Any]) -> tuple[float, list[float]]:
    """(now, failure times) in seconds from a script's reply in milliseconds."""
    now, *times = (float(value) / 1000.0 for value in reply)
    return now, times


class RedisThrottle:
    """Failure records shared by every node through Redis (two Lua scripts, atomic).

    ``prefix`` names the keys (the cluster's hash slot and the throttle, e.g.
    ``{propdev}:auth:acct:``); ``clock`` is for tests only (None: the Redis server's time).
    """

    def __init__(
        self,
        redis: Any,
        rule: Rule,
        *,
        prefix: str,
        fallback: LocalThrottle | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.redis = redis
        self.rule = rule
        self.prefix = prefix
        self.fallback = fallback if fallback is not None else LocalThrottle(rule)
        self.clock = clock
        self._failed = redis.register_script(_FAILED_LUA)
        self._retry_after = redis.register_script(_RETRY_AFTER_LUA)

    def _key(self, key: str) -> str:
        return self.prefix + hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]

    def _args(self) -> list[float]:
        now_ms = 0 if self.clock is None else int(self.clock() * 1000)
        return [int(self.rule.window * 1000), self.rule.keep, now_ms]

    async def retry_after(self, key: str) -> float:
        if self.rule.keep <= 0:
            return 0.0
        try:
            reply = await self._retry_after(keys=[self._key(key)], args=self._args())
        except Exception as exc:  # redis down: this node's own counts, loudly
            log.warning("auth_throttle_redis_unavailable", error=type(exc).__name__)
            return self.fallback.retry_after_now(key)
        now, failures = _seconds(reply)
        return self.rule.wait(failures, now)

    async def failed(self, key: str) -> float:
        if self.rule.keep <= 0:
            return 0.0
        local_wait = self.fallback.failed_now(key)  # kept for an outage to come
        try:
            reply = await self._failed(
                keys=[self._key(key)], args=[*self._args(), uuid.uuid4().hex]
            )
        except Exception as exc:
            log.warning("auth_throttle_redis_unavailable", error=type(exc).__name__)
            return local_wait
        now, failures = _seconds(reply)
        return self.rule.wait(failures, now)

    async def succeeded(self, key: str) -> None:
        await self.fallback.succeeded(key)
        try:
            await self.redis.delete(self._key(key))
        except Exception as exc:
            log.warning("auth_throttle_redis_unavailable", error=type(exc).__name__)
