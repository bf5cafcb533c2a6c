"""Failure throttles against brute force: at most ``max_failures`` failures per ``window``.

A throttle counts failures per key (an account's normalized username, a source address) in a
sliding window; once a key has ``max_failures`` failures within ``window`` seconds,
``retry_after`` says how long until the oldest of them ages out. Two implementations behind
one async interface, ``FailureThrottle``:

- ``LocalThrottle``: this process's memory (the embedded node, and the fallback);
- ``RedisThrottle``: one sorted set per key in Redis, shared by every node of a cluster, so a
  guesser spreading attempts over the nodes is throttled as if there were one. Time is the
  Redis server's, so the nodes' clocks do not matter. Keys are hashed: no username or
  address appears in Redis.

When Redis cannot be reached, ``RedisThrottle`` falls back to its ``LocalThrottle``, which
records every failure this node sees (Redis up or not): during an outage each node throttles
what it sees itself -- at worst the limit times the number of nodes, never no limit.
"""

from __future__ import annotations

import collections
import hashlib
import time
import uuid
from collections.abc import Callable
from typing import Any, Protocol

import structlog

log = structlog.get_logger()


class FailureThrottle(Protocol):
    """Counts failures per key; ``retry_after`` is 0 while the key may still try."""

    max_failures: int
    window: float

    async def retry_after(self, key: str) -> float:
        """Seconds until ``key`` may try again (0 when it may now)."""
        ...

    async def failed(self, key: str) -> None:
        """Count one failure for ``key``."""
        ...

    async def succeeded(self, key: str) -> None:
        """Forget ``key``'s failures (a successful login)."""
        ...


class LocalThrottle:
    """This process's failure counts; at most ``capacity`` keys (least recently failed forgotten).

    It counts unknown usernames too, so a lock-out says nothing about which accounts exist.
    ``max_failures <= 0`` turns it off.
    """

    def __init__(
        self,
        max_failures: int = 5,
        window: float = 300.0,
        *,
        capacity: int = 100_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.max_failures = max_failures
        self.window = window
        self.capacity = capacity
        self.clock = clock
        self._failures: collections.OrderedDict[str, list[float]] = collections.OrderedDict()

    def _recent(self, key: str, now: float) -> list[float]:
        return [t for t in self._failures.get(key, ()) if now - t < self.window]

    def retry_after_now(self, key: str) -> float:
        if self.max_failures <= 0:
            return 0.0
        now = self.clock()
        recent = self._recent(key, now)
        if len(recent) < self.max_failures:
            return 0.0
        return max(0.0, recent[-self.max_failures] + self.window - now)

    def failed_now(self, key: str) -> None:
        if self.max_failures <= 0:
            return
        now = self.clock()
        recent = self._recent(key, now)
        self._failures.pop(key, None)
        self._failures[key] = [*recent, now][-self.max_failures :]
        while len(self._failures) > self.capacity:
            self._failures.popitem(last=False)

    async def retry_after(self, key: str) -> float:
        return self.retry_after_now(key)

    async def failed(self, key: str) -> None:
        self.failed_now(key)

    async def succeeded(self, key: str) -> None:
        self._failures.pop(key, None)


# Both scripts: KEYS[1] the key; ARGV: window (ms), max failures, now (ms; 0: the Redis
# server's clock).
_PROLOGUE_LUA = """
local window = tonumber(ARGV[1])
local max = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
if now == 0 then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
"""

# ARGV[4]: a unique member for this failure.
_FAILED_LUA = (
    _PROLOGUE_LUA
    + """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
redis.call('ZADD', KEYS[1], now, ARGV[4])
redis.call('ZREMRANGEBYRANK', KEYS[1], 0, -(max + 1))
redis.call('PEXPIRE', KEYS[1], window)
return 1
"""
)

# Returns the milliseconds until the key may try again (0: now).
_RETRY_AFTER_LUA = (
    _PROLOGUE_LUA
    + """
local recent = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. (now - window), '+inf', 'WITHSCORES')
local n = #recent / 2
if n < max then
  return 0
end
local oldest = tonumber(recent[(n - max) * 2 + 2])
return math.max(0, math.ceil(oldest + window - now))
"""
)


class RedisThrottle:
    """Failure counts shared by every node through Redis (two Lua scripts, atomic).

    ``prefix`` names the keys (the cluster's hash slot and the throttle, e.g.
    ``{propdev}:auth:acct:``); ``clock`` is for tests only (None: the Redis server's time).
    """

    def __init__(
        self,
        redis: Any,
        *,
        prefix: str,
        max_failures: int = 5,
        window: float = 300.0,
        fallback: LocalThrottle | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.redis = redis
        self.prefix = prefix
        self.max_failures = max_failures
        self.window = window
        self.fallback = fallback if fallback is not None else LocalThrottle(max_failures, window)
        self.clock = clock
        self._failed = redis.register_script(_FAILED_LUA)
        self._retry_after = redis.register_script(_RETRY_AFTER_LUA)

    def _key(self, key: str) -> str:
        return self.prefix + hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]

    def _args(self) -> list[float]:
        now_ms = 0 if self.clock is None else int(self.clock() * 1000)
        return [int(self.window * 1000), self.max_failures, now_ms]

    async def retry_after(self, key: str) -> float:
        if self.max_failures <= 0:
            return 0.0
        try:
            wait_ms = await self._retry_after(keys=[self._key(key)], args=self._args())
        except Exception as exc:  # redis down: this node's own counts, loudly
            log.warning("auth_throttle_redis_unavailable", error=type(exc).__name__)
            return self.fallback.retry_after_now(key)
        return float(wait_ms) / 1000.0

    async def failed(self, key: str) -> None:
        if self.max_failures <= 0:
            return
        self.fallback.failed_now(key)  # kept for an outage to come
        try:
            await self._failed(keys=[self._key(key)], args=[*self._args(), uuid.uuid4().hex])
        except Exception as exc:
            log.warning("auth_throttle_redis_unavailable", error=type(exc).__name__)

    async def succeeded(self, key: str) -> None:
        await self.fallback.succeeded(key)
        try:
            await self.redis.delete(self._key(key))
        except Exception as exc:
            log.warning("auth_throttle_redis_unavailable", error=type(exc).__name__)
