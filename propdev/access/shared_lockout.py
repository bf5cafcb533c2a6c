"""``RedisKeypadLockout``: the keypad lockout of ``propdev.access.lockout`` in the cluster's
Redis, so that it outlives a change of the device's owner and every node sees it.

Per device, a sorted set of the recent unknown codes' times (the sliding window) and a hash
(``locked_until``, ``lockouts``, ``refused``); a code's check and its count are one Lua script
each, atomic on the server. Times are the node's clock (the opening pipeline's, which tests
move), as in memory: the device's owner is its only writer, so one node's clock decides.

Redis unreachable: the decision falls back to this node's in-memory ``KeypadLockout``
(``keypad_lockout_redis_unavailable`` logged once per outage): a keypad is never held up by
Redis, and a guesser still meets a lockout, counted on this node alone meanwhile.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterable
from typing import Any

import structlog

from propdev.access.lockout import LOCKED, REFUSED, KeypadLockout, KeypadPolicy

log = structlog.get_logger()

KEEP = 30 * 86400
"""Seconds a device's lockout history (``lockouts``, ``refused``) is kept after its last one."""

# KEYS[1] the device's hash; ARGV: now.
_REFUSE_LUA = """
local until_ = tonumber(redis.call('HGET', KEYS[1], 'locked_until') or '0')
if until_ > tonumber(ARGV[1]) then
  redis.call('HINCRBY', KEYS[1], 'refused', 1)
  return tostring(until_)
end
if until_ > 0 then
  redis.call('HDEL', KEYS[1], 'locked_until')
end
return false
"""

# KEYS[1] the device's hash, KEYS[2] its wrong codes; ARGV: now, window, attempts, cooldown,
# a unique member, keep (s). Returns the time the device is locked until, or nil.
_WRONG_LUA = """
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', tostring(now - window))
redis.call('ZADD', KEYS[2], now, ARGV[5])
if redis.call('ZCARD', KEYS[2]) < tonumber(ARGV[3]) then
  redis.call('PEXPIRE', KEYS[2], math.ceil(window * 1000))
  return false
end
redis.call('DEL', KEYS[2])
local until_ = now + tonumber(ARGV[4])
redis.call('HSET', KEYS[1], 'locked_until', tostring(until_))
redis.call('HINCRBY', KEYS[1], 'lockouts', 1)
redis.call('EXPIRE', KEYS[1], ARGV[6])
return tostring(until_)
"""


class RedisKeypadLockout:
    """``Lockout`` in Redis under ``prefix``; ``fallback`` decides while Redis is away."""

    def __init__(
        self,
        redis: Any,
        *,
        prefix: str,
        policy: KeypadPolicy | None = None,
        on_event: Callable[[str], None] | None = None,
        op_timeout: float = 0.5,
    ) -> None:
        self.redis = redis
        self.prefix = prefix
        self.policy = policy or KeypadPolicy()
        self.on_event = on_event
        self.op_timeout = op_timeout
        self.fallback = KeypadLockout(self.policy, on_event=on_event)
        self.healthy = True
        self._refuse = redis.register_script(_REFUSE_LUA)
        self._wrong = redis.register_script(_WRONG_LUA)

    def _keys(self, device: str) -> list[str]:
        key = f"{self.prefix}keypad:{device}"
        return [key, f"{key}:wrong"]

    async def refuse(self, device: str, now: float) -> float | None:
        try:
            async with asyncio.timeout(self.op_timeout):
                until = await self._refuse(keys=self._keys(device)[:1], args=[repr(now)])
        except Exception as exc:
            self._unavailable(exc)
            return self.fallback.refuse_now(device, now)
        self._back()
        if until is None:
            return None
        self._emit(REFUSED)
        return float(until)

    async def wrong(self, device: str, now: float) -> bool:
        policy = self.policy
        try:
            async with asyncio.timeout(self.op_timeout):
                until = await self._wrong(
                    keys=self._keys(device),
                    args=[
                        repr(now),
                        repr(policy.window),
                        policy.attempts,
                        repr(policy.cooldown),
                        f"{now!r}:{uuid.uuid4().hex[:12]}",
                        KEEP,
                    ],
                )
        except Exception as exc:
            self._unavailable(exc)
            return self.fallback.wrong_now(device, now)
        self._back()
        if until is None:
            return False
        log.warning(
            "keypad_locked_out",
            access_point_id=device,
            attempts=policy.attempts,
            window_s=policy.window,
            until=float(until),
        )
        self._emit(LOCKED)
        return True

    async def right(self, device: str) -> None:
        try:
            async with asyncio.timeout(self.op_timeout):
                await self.redis.delete(self._keys(device)[1])
        except Exception as exc:
            self._unavailable(exc)
        self.fallback.right_now(device)

    async def snapshots(self, devices: Iterable[str], now: float) -> dict[str, dict[str, Any]]:
        names = list(devices)
        try:
            async with asyncio.timeout(self.op_timeout * 4):
                pipe = self.redis.pipeline(transaction=False)
                for device in names:
                    key, wrong = self._keys(device)
                    pipe.hmget(key, "locked_until", "lockouts", "refused")
                    pipe.zcount(wrong, f"({now - self.policy.window!r}", "+inf")
                replies = await pipe.execute()
        except Exception as exc:
            self._unavailable(exc)
            return await self.fallback.snapshots(names, now)
        self._back()
        out: dict[str, dict[str, Any]] = {}
        for i, device in enumerate(names):
            until_raw, lockouts, refused = replies[2 * i]
            until = float(until_raw) if until_raw is not None else None
            locked = until is not None and until > now
            out[device] = {
                "locked_out": locked,
                "locked_until": until if locked else None,
                "wrong_codes": int(replies[2 * i + 1]),
                "lockouts": int(lockouts or 0),
                "refused_while_locked": int(refused or 0),
            }
        return out

    def _unavailable(self, error: BaseException) -> None:
        if self.healthy:
            log.warning("keypad_lockout_redis_unavailable", error=type(error).__name__)
        self.healthy = False

    def _back(self) -> None:
        if not self.healthy:
            log.info("keypad_lockout_redis_back")
        self.healthy = True

    def _emit(self, event: str) -> None:
        if self.on_event is not None:
            self.on_event(event)
