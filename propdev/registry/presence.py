"""Presence: a killed node is seen gone when Redis sees its connection close, not a lease later.

Why: a shard's lease (``placement.LEASE``, 3 s) and a member's (``membership.LEASE``, 3 s)
must outlast a node that stalls (GC, a busy 2-core machine) for hundreds of ms, or ownership
flaps; but waiting for them after a ``kill -9`` kept a door away 3.6 to 5 s. Shorter leases would
trade one for the other. A killed process, though, has its TCP connections closed by the
kernel at once, and Redis frees the client at once; a stalled process keeps its connections
(so does a paused one, ``SIGSTOP``). So each node keeps one connection of its own, subscribed
to its presence channel (``<namespace>:presence:<node>``), and looks every ``POLL`` at the
others' channels (``PUBSUB NUMSUB``, one round trip). A member that this node saw subscribed
and then sees unsubscribed for ``CONFIRM`` is evicted: one script, which checks again that
its channel has no subscriber and that this node's has one (the script runs on the server
where this node's presence lives), removes it from the members and deletes the shard leases
it held. The normal take-over follows: the survivors' placement takes the shards at once, each
under a new store epoch (``fence``), so anything the evicted node could still commit is
refused.

Only a closed connection evicts; a stalled node is left to its leases, as before. A live node
whose presence connection is lost (Redis restarted, a failover, ``CLIENT KILL``) may be
evicted meanwhile, so it acts for no shard from the moment it notices (``suspend``) until it
is subscribed again and has renewed each lease after that (``resume``); it notices within a
``POLL`` (a ``PING`` on the connection), well inside ``CONFIRM``. After its own presence
(re)connects, a node has seen nobody yet: a member killed before it was seen again on this
Redis is left to its leases (after a Redis restart or a Sentinel failover, no member is
evicted for not being subscribed yet). A member from before presence (a rolling upgrade)
never subscribes, so it is never seen, and never evicted.

``PUBSUB NUMSUB`` counts the subscribers of the server it runs on: this holds for one Redis
and for Sentinel (the master), not for a Redis Cluster.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from typing import Any

import structlog
from redis import exceptions as redis_errors
from redis.asyncio import Redis

from propdev.registry.membership import RedisMembership

log = structlog.get_logger()

POLL = 0.25
"""Seconds between two looks at the others' presence (and pings of this node's own)."""
CONFIRM = 0.5
"""Seconds a member's presence must stay gone before it is evicted: two looks at least, and
longer than the member takes to notice a lost connection of its own (a ``POLL``)."""

# KEYS: members (zset), members' info (hash), the shard leases; ARGV: this node's channel, the
# gone member, its channel. -1: this node is not subscribed here; -2: the member is (again);
# else the number of shard leases deleted.
_EVICT = """
if redis.call('PUBSUB', 'NUMSUB', ARGV[1])[2] == 0 then return -1 end
if redis.call('PUBSUB', 'NUMSUB', ARGV[3])[2] ~= 0 then return -2 end
redis.call('ZREM', KEYS[1], ARGV[2])
redis.call('HDEL', KEYS[2], ARGV[2])
local n = 0
for i = 3, #KEYS do
  if redis.call('GET', KEYS[i]) == ARGV[2] then
    redis.call('DEL', KEYS[i])
    n = n + 1
  end
end
return n
"""


class Presence:
    """This node's presence connection, and the eviction of members whose one closed."""

    def __init__(
        self,
        redis: Redis,
        membership: RedisMembership,
        *,
        namespace: str,
        node_id: str,
        shard_keys: Sequence[str],
        on_lost: Callable[[], None],
        on_back: Callable[[], None],
        poll: float = POLL,
        confirm: float = CONFIRM,
    ) -> None:
        self.node_id = node_id
        self._redis = redis
        self._membership = membership
        self._namespace = namespace
        self._keys = [*membership.keys, *shard_keys]
        self._on_lost = on_lost
        self._on_back = on_back
        self._poll = poll
        self._confirm = confirm
        self._evict = redis.register_script(_EVICT)
        self._conn: Any = None  # a connection of the client's pool class, outside the pool
        self._seen: set[str] = set()  # subscribed on this Redis since our own (re)subscription
        self._gone_since: dict[str, float] = {}  # monotonic
        self._task: asyncio.Task[None] | None = None
        self.evictions = 0

    def channel(self, node_id: str) -> str:
        return f"{self._namespace}:presence:{node_id}"

    @property
    def client_name(self) -> str:
        """This node's presence connection's name, as ``CLIENT LIST`` shows it."""
        return f"{self._namespace}:presence:{self.node_id}".replace(" ", "_")

    @property
    def present(self) -> bool:
        return self._conn is not None

    async def start(self) -> None:
        await self._keep()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="presence")

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.wait({task}, timeout=2.0)  # never hang a shutdown on a stuck call
        await self._drop()

    async def _run(self) -> None:
        while True:  # until close() cancels it
            await asyncio.sleep(self._poll)
            try:
                await self._keep()
                if self.present:
                    await self.look()
            except Exception:
                log.exception("presence_tick_failed")

    # -- this node's own presence -------------------------------------------------------------

    async def _keep(self) -> None:
        """Subscribe if not (yet, or any more); else ping: a lost connection is noticed here."""
        if self._conn is not None:
            try:
                await self._conn.send_command("PING")
                await self._conn.read_response(push_request=True)
            except (redis_errors.RedisError, OSError) as exc:
                log.warning("presence_lost", node=self.node_id, error=str(exc))
                await self._drop()
                self._on_lost()
            return
        conn = self._redis.connection_pool.make_connection()  # type: ignore[no-untyped-call]  # redis-py leaves it untyped
        try:
            await conn.connect()
            await conn.send_command("CLIENT", "SETNAME", self.client_name)  # for CLIENT LIST
            await conn.read_response(push_request=True)
            await conn.send_command("SUBSCRIBE", self.channel(self.node_id))
            await conn.read_response(push_request=True)
        except (redis_errors.RedisError, OSError) as exc:
            with contextlib.suppress(Exception):
                await conn.disconnect()
            log.debug("presence_unavailable", node=self.node_id, error=str(exc))
            return
        self._conn = conn
        self._seen.clear()
        self._gone_since.clear()
        log.info("presence_subscribed", node=self.node_id)
        self._on_back()

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.disconnect()

    # -- the others' ----------------------------------------------------------------------

    async def look(self) -> list[str]:
        """Read the members' presence; evict those gone for ``CONFIRM`` (their ids)."""
        others = [m for m in self._membership.members() if m != self.node_id]
        try:
            counts = await self._redis.pubsub_numsub(
                self.channel(self.node_id), *(self.channel(m) for m in others)
            )
        except (redis_errors.RedisError, OSError):
            return []
        if not counts or int(counts[0][1]) == 0:
            return []  # this look ran on a server where we are not subscribed (a failover)
        now = time.monotonic()
        evict = []
        for member, (_channel, count) in zip(others, counts[1:], strict=True):
            if int(count) > 0:
                self._seen.add(member)
                self._gone_since.pop(member, None)
            elif member in self._seen:
                since = self._gone_since.setdefault(member, now)
                if now - since >= self._confirm:
                    evict.append(member)
        evicted = [m for m in evict if await self._evict_one(m)]
        if evicted:
            await self._membership.beat()  # the others' placement hears of it at once
        return evicted

    async def _evict_one(self, member: str) -> bool:
        try:
            deleted = int(
                await self._evict(
                    keys=self._keys,
                    args=[self.channel(self.node_id), member, self.channel(member)],
                )
            )
        except (redis_errors.RedisError, OSError):
            return False
        self._seen.discard(member)
        self._gone_since.pop(member, None)
        if deleted < 0:
            return False
        self.evictions += 1
        log.warning("member_evicted", member=member, by=self.node_id, leases=deleted)
        return True
