"""Placement: device id -> shard (stable hash) -> the one live node that holds its lease.

A fixed number of shards; each live node prefers the shards whose rendezvous hash it wins among
the live members that host device actors (the ``devices`` role of ``PROPDEV_ROLES``, announced
in the membership info; a gateway-only node takes none), so a join or leave moves only about
1/N of them. A shard is held under a lease in Redis (renewed every tick, in Redis's clock) and,
for acting, under an epoch in the store (see ``fence``). This node considers a lease valid only
until its own monotonic deadline (the lease minus a margin, from before the renewal was sent):
a node paused past its lease finds its leases expired when it wakes, before it can ask Redis
anything.

Hand-off when membership changes: the old owner stops taking messages for the shard
(``holds`` is False), passivates the shard's actors (their state is saved), releases the
lease; the new owner acquires it at its next tick and activates actors on demand.

A node that drains (``hand_off_all``) announces ``draining`` first, so the others no longer
choose it; then it hands every shard off at once (each as soon as its actors are idle, so the
work in flight finishes first) while the tick goes on renewing the leases of those not yet
released, never taking one, and reading the owners (the node still forwards to them).

A killed node's shards need not wait for its lease: ``presence`` evicts it as soon as Redis
saw its connection close (its leases deleted, its membership removed), and the survivors take
the shards at their next tick under new epochs. While this node's own presence connection is
lost it may be evicted, so it acts for no shard (``suspend``); once subscribed again, each
lease counts only after a renewal sent since (``resume``). A renewal that finds this node's
lease gone (expired, or deleted by an eviction) takes the shard again under a new epoch: its
actors are passivated first (their state saved only if the store's epoch is still theirs).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import structlog
from redis import exceptions as redis_errors
from redis.asyncio import Redis

from propdev.registry.errors import NotOwnerError
from propdev.registry.fence import Fence
from propdev.registry.membership import Membership
from propdev.storage import StoreUnavailableError

log = structlog.get_logger()

SHARDS = 64
LEASE = 3.0
TICK = 1.0
MARGIN = 0.5

Release = Callable[[int], Awaitable[None]]

# KEYS: shard keys; ARGV: node id, lease in ms, "1" to renew only. Per key: 2 taken now,
# 1 renewed, 0 someone else's (or nobody's, renewing only).
_ACQUIRE = """
local out = {}
for i, key in ipairs(KEYS) do
  local cur = redis.call('GET', key)
  if not cur and ARGV[3] == '1' then
    out[i] = 0
  elseif not cur then
    redis.call('SET', key, ARGV[1], 'PX', ARGV[2])
    out[i] = 2
  elseif cur == ARGV[1] then
    redis.call('PEXPIRE', key, ARGV[2])
    out[i] = 1
  else
    out[i] = 0
  end
end
return out
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def _h(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


def shard_of(key: str, shards: int = SHARDS) -> int:
    """The shard of an actor id: a stable hash (the same in every process, unlike ``hash``)."""
    return _h(key) % shards


DEVICES_ROLE = "devices"


def device_hosts(membership: Membership) -> tuple[str, ...]:
    """The live members that host device actors: those that announce the ``devices`` role
    (``PROPDEV_ROLES``; a member that announces no roles, from before roles, hosts them too)
    and do not announce ``draining``."""
    return tuple(
        m
        for m in membership.members()
        if DEVICES_ROLE in (info := membership.info(m)).get("roles", (DEVICES_ROLE,))
        and not info.get("draining", False)
    )


def preferred_owner(shard: int, members: tuple[str, ...]) -> str | None:
    """The member that wins the shard's rendezvous hash (None without members)."""
    if not members:
        return None
    return max(members, key=lambda m: _h(f"{shard}/{m}"))


@dataclass(slots=True)
class Lease:
    epoch: int
    valid_until: float  # this node's monotonic clock


class Placement(Protocol):
    shards: int

    def holds(self, shard: int) -> bool:
        """True while this node may act for the shard (lease valid and not handing off)."""
        ...

    def epoch(self, shard: int) -> int:
        """The epoch under which this node holds the shard; ``NotOwnerError`` if it does not."""
        ...

    def owner_of(self, shard: int) -> str | None:
        """The node holding the shard as last seen (None while it moves)."""
        ...

    @property
    def ready(self) -> bool:
        """True once this node holds at least one shard and can reach the registry."""
        ...

    async def changed(self, timeout: float) -> None:  # noqa: ASYNC109 - a bounded wait for the next change
        """Wait (at most ``timeout``) until the owners were read again."""
        ...

    def snapshot(self) -> dict[str, Any]: ...

    async def start(self) -> None: ...

    def stop_taking(self) -> None:
        """Take no more shards (``hand_off_all`` does it too)."""
        ...

    async def hand_off_all(self) -> None:
        """Take no more shards and hand every held one off; go on renewing those not yet
        released, and reading the owners, until ``stop``."""
        ...

    async def stop(self) -> None:
        """Hand every shard off (release) and stop renewing."""
        ...


class InProcessPlacement:
    """The embedded default: this node holds every shard, forever."""

    def __init__(self, node_id: str, shards: int = SHARDS) -> None:
        self.node_id = node_id
        self.shards = shards

    def holds(self, shard: int) -> bool:
        return True

    def epoch(self, shard: int) -> int:
        return 0

    def owner_of(self, shard: int) -> str | None:
        return self.node_id

    @property
    def ready(self) -> bool:
        return True

    async def changed(self, timeout: float) -> None:  # noqa: ASYNC109
        await asyncio.sleep(timeout)

    def snapshot(self) -> dict[str, Any]:
        return {"shards": self.shards, "owners": {str(s): self.node_id for s in range(self.shards)}}

    async def start(self) -> None:
        pass

    def stop_taking(self) -> None:
        pass

    async def hand_off_all(self) -> None:
        pass

    async def stop(self) -> None:
        pass


class RedisPlacement:
    """Leases in Redis, epochs in the store, rebalanced on every tick and membership change."""

    def __init__(
        self,
        redis: Redis,
        membership: Membership,
        fence: Fence,
        *,
        namespace: str,
        node_id: str,
        shards: int = SHARDS,
        lease: float = LEASE,
        tick: float = TICK,
        release: Release | None = None,
        devices: bool = True,
    ) -> None:
        self.node_id = node_id
        self.devices = devices  # False: a gateway-only node, which never takes a shard
        self.shards = shards
        self._redis = redis
        self._membership = membership
        self._fence = fence
        self._keys = [f"{namespace}:shard:{s}" for s in range(shards)]
        self._lease = lease
        self._lease_ms = int(lease * 1000)
        self._tick = tick
        self._release_hook = release
        self._acquire = redis.register_script(_ACQUIRE)
        self._release = redis.register_script(_RELEASE)
        self._held: dict[int, Lease] = {}
        self._draining: set[int] = set()
        self._owners: dict[int, str] = {}
        self._reachable = False
        self._changed = asyncio.Event()
        self._nudge = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._ticking = asyncio.Lock()  # a tick from before hand_off_all ends before it starts
        self._stopping = False
        self._present = True  # False from ``suspend`` to ``resume``
        self._fresh_from = 0.0  # monotonic: only a renewal sent from then on makes a lease valid
        self.acquisitions = 0
        self.losses = 0
        membership.on_change(lambda _members: self._nudge.set())

    # -- queries --------------------------------------------------------------------------

    def holds(self, shard: int) -> bool:
        lease = self._held.get(shard)
        return (
            lease is not None
            and self._present
            and shard not in self._draining
            and time.monotonic() < lease.valid_until
        )

    def epoch(self, shard: int) -> int:
        if not self.holds(shard):
            raise NotOwnerError(f"{self.node_id} does not hold shard {shard}")
        return self._held[shard].epoch

    def held_epoch(self, shard: int) -> int:
        """The epoch this node took the shard under, while the shard is still in its table:
        also while it is handed off (the actors' state is saved before the release) and past
        the lease on this node's clock. Only for a write checked against the store's epoch in
        its transaction (``Fence.check``), which refuses it once another node took the shard;
        ``NotOwnerError`` once the shard was released or found lost."""
        lease = self._held.get(shard)
        if lease is None:
            raise NotOwnerError(f"{self.node_id} does not hold shard {shard}")
        return lease.epoch

    def owner_of(self, shard: int) -> str | None:
        if self.holds(shard):
            return self.node_id
        owner = self._owners.get(shard)
        return None if owner == self.node_id else owner

    @property
    def keys(self) -> list[str]:
        """The shards' lease keys, by shard."""
        return list(self._keys)

    def held(self) -> list[int]:
        return sorted(s for s in self._held if self.holds(s))

    @property
    def ready(self) -> bool:
        if not self.devices:
            return self._reachable
        return self._reachable and any(self.holds(s) for s in self._held)

    async def changed(self, timeout: float) -> None:  # noqa: ASYNC109
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._changed.wait()

    def snapshot(self) -> dict[str, Any]:
        return {
            "shards": self.shards,
            "held": self.held(),
            "epochs": {str(s): lease.epoch for s, lease in sorted(self._held.items())},
            "owners": {str(s): self._owners.get(s) for s in range(self.shards)},
            "acquisitions": self.acquisitions,
            "losses": self.losses,
        }

    # -- life -----------------------------------------------------------------------------

    async def start(self) -> None:
        await self.rebalance()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="placement")

    def suspend(self) -> None:
        """This node's presence connection is lost (another node may evict it): act for no
        shard until ``resume``."""
        self._present = False
        self._void()

    def resume(self) -> None:
        """Subscribed again: a lease counts once renewed from now on (an eviction may have
        deleted it meanwhile); the next tick runs at once."""
        self._present = True
        self._void()
        self._nudge.set()

    def _void(self) -> None:
        self._fresh_from = time.monotonic()
        for lease in self._held.values():
            lease.valid_until = 0.0
        self._signal()

    def stop_taking(self) -> None:
        """Take no more shards; from the next tick on, only renew and read the owners."""
        self._stopping = True

    async def hand_off_all(self) -> None:
        self.stop_taking()
        async with self._ticking:  # from now on the tick renews only
            pass
        shards = [s for s in self._held if s not in self._draining]
        await asyncio.gather(*(self._hand_off(s) for s in shards))

    async def stop(self) -> None:
        await self.hand_off_all()
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.wait({task}, timeout=2.0)  # never hang a shutdown on a stuck call
        for shard in list(self._held):  # one a late tick found (none, normally)
            await self._hand_off(shard)

    async def _run(self) -> None:
        while True:  # until stop() cancels it: draining, it still renews and reads owners
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._tick):
                    await self._nudge.wait()
            self._nudge.clear()
            try:
                await self.rebalance()
            except Exception:
                log.exception("placement_tick_failed")

    # -- the tick -------------------------------------------------------------------------

    async def rebalance(self) -> None:
        """Renew held leases, hand off what another member should hold, take what is ours;
        once ``hand_off_all`` began, only renew (it hands off) and read the owners."""
        async with self._ticking:
            await self._rebalance(self._stopping)

    async def _rebalance(self, stopping: bool) -> None:
        members = self._membership.members()
        healthy = self._membership.healthy and self.node_id in members
        hosts = device_hosts(self._membership)
        desired = (
            {s for s in range(self.shards) if preferred_owner(s, hosts) == self.node_id}
            if healthy and self.devices and not stopping
            else set()
        )
        for shard in [s for s in self._held if s not in desired and s not in self._draining]:
            if healthy and not stopping:
                await self._hand_off(shard)
        # Draining, the shards being handed off are renewed too: their actors' work in flight
        # commits under the epoch they hold until the release.
        wanted = sorted(
            set(self._held) if stopping else (set(self._held) | desired) - self._draining
        )
        started = time.monotonic()
        try:
            codes = (
                await self._acquire(
                    keys=[self._keys[s] for s in wanted],
                    args=[self.node_id, self._lease_ms, "1" if stopping else "0"],
                )
                if wanted
                else []
            )
            owners_raw = await self._redis.mget(self._keys)
        except (redis_errors.RedisError, OSError) as exc:
            if self._reachable:
                log.warning("placement_unreachable", error=str(exc))
            self._reachable = False
            self._signal()
            return
        self._reachable = True
        # A renewal sent before a ``suspend``/``resume`` proves nothing after it.
        valid_until = started + self._lease - MARGIN if started >= self._fresh_from else 0.0
        fresh: list[int] = []
        for shard, code in zip(wanted, codes, strict=True):
            if code == 1 and shard in self._held:
                self._held[shard].valid_until = valid_until
            elif code == 2 and shard in self._held:
                # Our lease was gone (expired, or deleted by an eviction): another node may
                # have held the shard meanwhile, so its actors go and a new epoch is taken.
                await self._retake(shard)
                fresh.append(shard)
            elif code and not stopping:
                fresh.append(shard)
            elif shard in self._held and shard not in self._draining:
                await self._lost(shard)
        if fresh:
            try:
                epochs = await self._fence.advance(fresh, self.node_id)
            except StoreUnavailableError as exc:
                log.warning("placement_fence_unavailable", shards=fresh, error=str(exc))
            else:
                for shard, epoch in epochs.items():
                    self._held[shard] = Lease(epoch, valid_until)
                self.acquisitions += len(epochs)
                log.info("shards_acquired", shards=sorted(epochs), epochs=epochs)
        self._owners = {
            s: (o.decode() if isinstance(o, bytes) else str(o))
            for s, o in enumerate(owners_raw)
            if o is not None
        }
        self._signal()

    def _signal(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def _lost(self, shard: int) -> None:
        """Someone else holds the shard now: stop acting for it at once."""
        self._held.pop(shard, None)
        self.losses += 1
        log.warning("shard_lost", shard=shard)
        if self._release_hook is not None:
            await self._release_hook(shard)

    async def _retake(self, shard: int) -> None:
        """Passivate the shard's actors (each saves its state if the store's epoch is still
        the one this node holds) and forget the old lease, before a new epoch is taken."""
        self._draining.add(shard)
        try:
            if self._release_hook is not None:
                await self._release_hook(shard)
        finally:
            self._held.pop(shard, None)
            self._draining.discard(shard)
        log.warning("shard_retaken", shard=shard)

    async def _hand_off(self, shard: int) -> None:
        self._draining.add(shard)
        try:
            if self._release_hook is not None:
                await self._release_hook(shard)
            with contextlib.suppress(redis_errors.RedisError, OSError):
                await self._release(keys=[self._keys[shard]], args=[self.node_id])
        finally:
            self._held.pop(shard, None)
            self._draining.discard(shard)
            self._owners.pop(shard, None)
        log.info("shard_handed_off", shard=shard)
