"""Membership: which nodes are alive, known to every node within a few seconds.

Each node renews a lease (``LEASE`` seconds) every ``HEARTBEAT`` seconds; a node whose lease
ran out is gone. In Redis the lease is a score in one sorted set (expiry in Redis's own clock,
so the nodes' clocks do not matter), renewed and read in one script call. A clean leave
removes the entry at once.

What a member announces (its URL, its roles) is read again on every heartbeat, so a change of it
is seen by the others within a heartbeat too: a node that drains announces ``draining`` while it
hands its shards off (the others stop choosing it as an owner, and still forward to it what it
holds), then leaves; a node that has left goes on reading the live set until ``stop``, to route
to the others while it finishes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from typing import Any, Protocol

import structlog
from redis import exceptions as redis_errors
from redis.asyncio import Redis

log = structlog.get_logger()

LEASE = 3.0
HEARTBEAT = 1.0

Listener = Callable[[tuple[str, ...]], None]

_HEARTBEAT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local gone = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)
for _, id in ipairs(gone) do redis.call('HDEL', KEYS[2], id) end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if ARGV[4] == '1' then
  redis.call('ZREM', KEYS[1], ARGV[1])
  redis.call('HDEL', KEYS[2], ARGV[1])
else
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
  redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
end
return redis.call('ZRANGE', KEYS[1], 0, -1)
"""


class Membership(Protocol):
    """The live set of nodes, as this node knows it."""

    node_id: str

    def members(self) -> tuple[str, ...]:
        """Live node ids, sorted (this node included while it is healthy)."""
        ...

    def info(self, node_id: str) -> dict[str, Any]:
        """What a member announced about itself (its URL, when it started)."""
        ...

    @property
    def healthy(self) -> bool:
        """False while this node cannot renew its own lease."""
        ...

    def on_change(self, listener: Listener) -> None:
        """Call ``listener`` with the live set when it changes, or when a member announces
        something new (``announce``)."""
        ...

    async def start(self) -> None: ...

    async def announce(self, **info: Any) -> None:
        """Add ``info`` to what this node announces (``draining=True``), seen by the others at
        their next heartbeat."""
        ...

    async def leave(self) -> None:
        """Leave cleanly (the others see this node gone at their next heartbeat), but go on
        reading the live set until ``stop``."""
        ...

    async def stop(self) -> None:
        """Leave, if not yet, and stop reading the live set."""
        ...


class InProcessMembership:
    """The embedded default: this node alone."""

    def __init__(self, node_id: str, info: dict[str, Any] | None = None) -> None:
        self.node_id = node_id
        self._info = info or {}

    def members(self) -> tuple[str, ...]:
        return (self.node_id,)

    def info(self, node_id: str) -> dict[str, Any]:
        return self._info if node_id == self.node_id else {}

    @property
    def healthy(self) -> bool:
        return True

    def on_change(self, listener: Listener) -> None:
        pass

    async def start(self) -> None:
        pass

    async def announce(self, **info: Any) -> None:
        self._info = {**self._info, **info}

    async def leave(self) -> None:
        pass

    async def stop(self) -> None:
        pass


class RedisMembership:
    """Heartbeat and lease in Redis; the live set refreshed with every heartbeat."""

    def __init__(
        self,
        redis: Redis,
        *,
        namespace: str,
        node_id: str,
        info: dict[str, Any] | None = None,
        lease: float = LEASE,
        heartbeat: float = HEARTBEAT,
    ) -> None:
        self.node_id = node_id
        self._redis = redis
        self._keys = [f"{namespace}:members", f"{namespace}:members:info"]
        self._info = {**(info or {}), "started_at": time.time()}
        self._lease_ms = int(lease * 1000)
        self._heartbeat = heartbeat
        self._script = redis.register_script(_HEARTBEAT)
        self._members: tuple[str, ...] = ()
        self._infos: dict[str, dict[str, Any]] = {}
        self._listeners: list[Listener] = []
        self._healthy = False
        self._task: asyncio.Task[None] | None = None
        self._beating = asyncio.Lock()  # one beat at a time: none re-announces us after we left
        self._left = False
        self._stopped = False

    @property
    def keys(self) -> tuple[str, str]:
        """The live set's key (a sorted set) and the members' announcements' (a hash)."""
        return self._keys[0], self._keys[1]

    def members(self) -> tuple[str, ...]:
        return self._members

    def info(self, node_id: str) -> dict[str, Any]:
        return self._infos.get(node_id, {})

    @property
    def healthy(self) -> bool:
        return self._healthy

    def on_change(self, listener: Listener) -> None:
        self._listeners.append(listener)

    async def start(self) -> None:
        await self.beat()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="membership")

    async def announce(self, **info: Any) -> None:
        self._info = {**self._info, **info}
        await self.beat()

    async def leave(self) -> None:
        async with self._beating:
            if self._left:
                return
            self._left = True
            with contextlib.suppress(redis_errors.RedisError, OSError):
                await self._script(keys=self._keys, args=[self.node_id, self._lease_ms, "", "1"])
        log.info("membership_left", node=self.node_id)

    async def stop(self) -> None:
        await self.leave()
        # The flag, not only the cancel: a beat in flight ends without another.
        self._stopped = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.wait({task}, timeout=2.0)  # never hang a shutdown on a stuck call
        self._healthy = False

    async def beat(self) -> tuple[str, ...]:
        """Renew this node's lease (once it left: only read) and read the live set and what
        its members announce (two round trips)."""
        if self._stopped:
            return self._members
        async with self._beating:
            return await self._beat()

    async def _beat(self) -> tuple[str, ...]:
        leaving = "1" if self._left else "0"
        try:
            raw = await self._script(
                keys=self._keys,
                args=[self.node_id, self._lease_ms, json.dumps(self._info), leaving],
            )
        except (redis_errors.RedisError, OSError) as exc:
            if self._healthy:
                log.warning("membership_unhealthy", error=str(exc))
            self._healthy = False
            return self._members
        self._healthy = True
        members = tuple(sorted(m.decode() if isinstance(m, bytes) else str(m) for m in raw))
        infos = await self._read_infos(members)
        if infos is None:
            return self._members  # a member's roles unknown: the next beat tries again
        if members == self._members and infos == self._infos:
            return members
        joined = set(members) - set(self._members)
        left = set(self._members) - set(members)
        if joined or left:
            log.info(
                "membership_changed",
                members=list(members),
                joined=sorted(joined),
                left=sorted(left),
            )
        self._members = members
        self._infos = infos
        for listener in self._listeners:
            listener(members)
        return members

    async def _read_infos(self, members: tuple[str, ...]) -> dict[str, dict[str, Any]] | None:
        """What the members announced; None if Redis did not answer."""
        try:
            raw = await self._redis.hgetall(self._keys[1])
        except (redis_errors.RedisError, OSError):
            return None
        infos = {}
        for key, value in raw.items():
            k = key.decode() if isinstance(key, bytes) else str(key)
            if k in members:
                with contextlib.suppress(ValueError):
                    infos[k] = json.loads(value)
        return infos

    async def _run(self) -> None:
        while not self._stopped:
            await asyncio.sleep(self._heartbeat)
            await self.beat()
