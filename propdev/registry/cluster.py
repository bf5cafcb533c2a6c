"""Cluster: what a node needs to be one of several linked by Redis.

The ``Node`` holds a ``Cluster`` when ``PROPDEV_REDIS_URL`` or ``PROPDEV_REDIS_SENTINELS`` is
set (and none otherwise: the embedded default keeps its in-process bus and its direct asks).
The cluster owns the Redis client (``connect.redis_client``), the ``RedisBus``,
``RedisMembership``, ``RedisPlacement`` (leases + store epochs), the ``Presence`` (a killed
member evicted as soon as Redis saw its connection close), the node's ``Inbox`` and the
``Revocations``; ``ask`` routes a message for a device to the
shard's owner: a local ask here, a remote ask over the owner's inbox otherwise, re-resolved
while the shard moves (a request that arrived at the wrong node is forwarded, never refused).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import structlog

from propdev.access import OpenOutcome, Reason, failed
from propdev.actors import ActorStoppedError, Address, AskTimeout
from propdev.actors.messages import OpenAccessPoint
from propdev.registry.connect import close_redis, redis_client
from propdev.registry.errors import (
    BusUnavailableError,
    NotOwnerError,
    RegistryError,
    RemoteAskTimeout,
)
from propdev.registry.fence import Fence
from propdev.registry.inbox import Inbox
from propdev.registry.membership import RedisMembership
from propdev.registry.pipeline import Pipeliner
from propdev.registry.placement import RedisPlacement, shard_of
from propdev.registry.presence import Presence
from propdev.registry.redis_bus import RedisBus
from propdev.registry.revocations import Revocations
from propdev.registry.wire import MOVED

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

    from propdev.actors import ActorSystem
    from propdev.config import Settings
    from propdev.storage import Database, UnitConnection

log = structlog.get_logger()

PLACED_KINDS = frozenset({"device"})
"""Kinds whose actors live on their shard's owner; the others (sessions, bound to the
node's own sockets) are local to each node."""
Direct = Callable[[str, object], Awaitable[object]]
"""(target, message) -> reply: a message served without the target's actor (``handle``)."""
MOVE_WAIT = 0.25
HAND_OFF_WITHIN = 5.0
MOVED_GRACE = 2.0
"""How long a drained node that stops still answers ``MOVED``: a placement tick and a
heartbeat, for the other nodes' owner tables to drop it."""


class ClusterUnavailableError(RegistryError, ConnectionError):
    """Raised when this node cannot reach the registry, or a shard has no owner in time."""


class ShardGuard:
    """What a device actor checks: before acting (the lease, in memory) and in its commit
    transaction (the store's epoch, share-locked)."""

    def __init__(self, placement: RedisPlacement, fence: Fence) -> None:
        self._placement = placement
        self._fence = fence

    def precheck(self, access_point_id: str) -> None:
        self._placement.epoch(shard_of(access_point_id, self._placement.shards))

    async def check(self, conn: AsyncConnection, access_point_id: str) -> None:
        shard = shard_of(access_point_id, self._placement.shards)
        await self._fence.check(conn, shard, self._placement.epoch(shard))

    async def may_save(self, conn: AsyncConnection, access_point_id: str) -> bool:
        """For an actor's ``on_stop``: True if the epoch this node took the shard under (also
        while handing it off) is still the store's, checked in ``conn`` (the row is
        share-locked to the end of the save's transaction, so a newer owner's acquisition waits
        for the save and then reads it); else False, and it is logged."""
        shard = shard_of(access_point_id, self._placement.shards)
        try:
            await self._fence.check(conn, shard, self._placement.held_epoch(shard))
        except NotOwnerError as exc:  # FencedError too: a newer owner took the shard
            log.warning("device_state_not_saved", access_point_id=access_point_id, error=str(exc))
            return False
        return True

    def fencing(self, access_point_id: str) -> Callable[[UnitConnection], None]:
        """``check`` for a ``Database.unit``: the epoch this node holds is read now (on the
        loop), the store's is compared with it inside the unit's transaction."""
        shard = shard_of(access_point_id, self._placement.shards)
        epoch = self._placement.epoch(shard)
        return lambda conn: self._fence.check_in(conn, shard, epoch)


class Cluster:
    def __init__(self, settings: Settings, system: ActorSystem, db: Database) -> None:
        self.node_id = settings.node_id
        self.system = system
        self.redis = redis_client(
            settings,
            socket_connect_timeout=1.0,
            socket_timeout=3.0,
            max_connections=64,
        )
        namespace = "{" + settings.redis_prefix + "}"  # one hash slot: scripts work on Cluster
        self.namespace = namespace
        self.pipeliner = Pipeliner(self.redis)
        self.bus = RedisBus(self.redis, self.pipeliner, namespace=namespace, node_id=self.node_id)
        self.membership = RedisMembership(
            self.redis,
            namespace=namespace,
            node_id=self.node_id,
            info={"url": f"https://{settings.host}:{settings.port}", "roles": list(settings.roles)},
        )
        self.fence = Fence(db)
        self.placement = RedisPlacement(
            self.redis,
            self.membership,
            self.fence,
            namespace=namespace,
            node_id=self.node_id,
            release=self._release_shard,
            devices=settings.devices,
        )
        self.presence = Presence(
            self.redis,
            self.membership,
            namespace=namespace,
            node_id=self.node_id,
            shard_keys=self.placement.keys,
            on_lost=self.placement.suspend,
            on_back=self.placement.resume,
        )
        self.inbox = Inbox(
            self.redis,
            self.pipeliner,
            namespace=namespace,
            node_id=self.node_id,
            serve=self._serve,
            members=self.membership.members,  # the lowest live member sweeps dead inboxes
        )
        self.guard = ShardGuard(self.placement, self.fence)
        self.revocations = Revocations(self.bus, deaf_for=self.bus.deaf_for)
        self.draining = False
        self._drained_at: float | None = None  # the loop's time
        self.stats = {"local": 0, "forwarded": 0, "served": 0, "moved": 0, "fenced": 0}
        self._direct: dict[type, Direct] = {}

    def handle(self, kind: type, handler: Direct) -> None:
        """Serve messages of type ``kind`` with ``handler(target, message)`` instead of the
        target's actor, here and when other nodes send them: a placed target's (``device:…``)
        on its shard's owner, as ``ask`` routes it; another kind's (``grpc:<partner>``) on the
        node ``inbox.ask`` names."""
        self._direct[kind] = handler

    # -- life -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Join: bus, presence, membership, inbox; then take the shards this node should
        hold."""
        self.pipeliner.start()
        self.bus.start()
        await self.presence.start()  # before membership: a member is evictable once seen
        await self.membership.start()
        await self.inbox.start()
        await self.placement.start()
        log.info(
            "cluster_joined",
            node=self.node_id,
            members=list(self.membership.members()),
            shards=self.placement.held(),
        )

    async def drain(self) -> None:
        """Stop owning shards, serving meanwhile: take no more, announce ``draining`` (the
        others stop choosing this node, and take each shard as it is released) and hand every
        shard off at once. An ask for a shard being handed off is answered ``MOVED`` (the asker
        re-routes); the shard's lease is released once its actors are idle (the work in flight
        done, their state saved), and renewed until then. Afterwards this node still reads its
        inbox (``MOVED`` for every placed target) and forwards its own asks to the owners."""
        self.draining = True
        self.placement.stop_taking()
        await self.membership.announce(draining=True)
        await self.placement.hand_off_all()
        self._drained_at = asyncio.get_running_loop().time()
        log.info("cluster_drained", node=self.node_id)

    async def leave(self) -> None:
        """After ``drain``, for a node that stops: go on answering ``MOVED`` until the others'
        owner tables (read every tick) no longer name this node (``MOVED_GRACE`` after the last
        release), then stop reading the inbox, answering what it still holds, then leave the
        membership. An ask that still arrives is the dead-inbox sweeper's (``Inbox.sweep``)."""
        loop = asyncio.get_running_loop()
        drained_at = self._drained_at if self._drained_at is not None else loop.time()
        grace = drained_at + MOVED_GRACE - loop.time()
        if grace > 0:
            await asyncio.sleep(grace)
        await self.inbox.stop_accepting()
        await self.membership.leave()

    async def close(self) -> None:
        """Stop ticking, reading the members and the inbox; close the connections."""
        await self.placement.stop()
        await self.membership.stop()
        await self.presence.close()  # after leaving: nobody evicts a node that left
        await self.inbox.close()
        await self.bus.close()
        await self.pipeliner.close()
        await close_redis(self.redis)

    # -- routing --------------------------------------------------------------------------

    async def ask(self, target: str, message: object, timeout: float) -> object:  # noqa: ASYNC109 - the deadline of the whole routed ask
        """Ask the actor at ``target`` wherever its shard is held."""
        address = Address.of(target)
        if address.kind not in PLACED_KINDS:
            return await self.system.ask(target, message, timeout=timeout)
        shard = shard_of(address.id, self.placement.shards)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            left = deadline - loop.time()
            if left <= 0:
                raise ClusterUnavailableError(f"shard {shard} has no reachable owner")
            if self.placement.holds(shard):
                try:
                    self.stats["local"] += 1
                    return await self._here(target, message, left)
                except NotOwnerError:
                    self.stats["fenced"] += 1
                    log.warning("ask_fenced", target=target, shard=shard)
            elif not self.membership.healthy:
                raise ClusterUnavailableError("this node cannot reach the registry")
            else:
                owner = self.placement.owner_of(shard)
                if owner is not None and owner in self.membership.members():
                    reply = await self.inbox.ask(owner, target, message, left)
                    if reply is not MOVED:
                        self.stats["forwarded"] += 1
                        return reply
                    self.stats["moved"] += 1
            await self.placement.changed(min(MOVE_WAIT, max(left, 0.0)))

    async def open(self, message: OpenAccessPoint, timeout: float) -> OpenOutcome:  # noqa: ASYNC109 - the open's whole deadline
        """Route an open to the door's owner; the cluster's failures are failed outcomes."""
        try:
            outcome = await self.ask(f"device:{message.access_point_id}", message, timeout)
        except (AskTimeout, RemoteAskTimeout):
            return failed(message.access_point_id, Reason.DEVICE_TIMEOUT)
        except (ClusterUnavailableError, BusUnavailableError, ActorStoppedError) as exc:
            log.warning("open_unroutable", access_point_id=message.access_point_id, error=str(exc))
            return failed(message.access_point_id, Reason.CLUSTER_UNAVAILABLE, retry_after=1.0)
        if not isinstance(outcome, OpenOutcome):
            raise RegistryError(f"unexpected reply to an open: {outcome!r}")
        return outcome

    async def _serve(self, target: str, message: object, left: float) -> object:
        """An ask from another node: handled if this node holds the shard, else ``MOVED``."""
        address = Address.of(target)
        if address.kind not in PLACED_KINDS:
            handler = self._direct.get(type(message))
            if handler is None:
                return MOVED
            self.stats["served"] += 1
            return await handler(target, message)
        if not self.placement.holds(shard_of(address.id, self.placement.shards)):
            return MOVED
        self.stats["served"] += 1
        try:
            return await self._here(target, message, left)
        except NotOwnerError:
            self.stats["fenced"] += 1
            return MOVED

    async def _here(self, target: str, message: object, left: float) -> object:
        handler = self._direct.get(type(message))
        if handler is not None:
            return await handler(target, message)
        return await self.system.ask(target, message, timeout=left)

    async def _release_shard(self, shard: int) -> None:
        """Passivate this node's actors of ``shard`` (their state is saved in ``on_stop``)."""

        def in_shard(address: Address) -> bool:
            return (
                address.kind in PLACED_KINDS
                and shard_of(address.id, self.placement.shards) == shard
            )

        with contextlib.suppress(ActorStoppedError):
            await self.system.passivate_matching(in_shard, within=HAND_OFF_WITHIN)

    # -- operations -----------------------------------------------------------------------

    async def readiness(self) -> dict[str, bool]:
        return {
            "bus": await self.bus.ping(),
            "membership": self.membership.healthy,
            "registry": self.placement.ready and not self.draining,
        }

    def snapshot(self) -> dict[str, Any]:
        placement = self.placement.snapshot()
        owners: dict[str, str | None] = placement["owners"]
        members = self.membership.members()
        return {
            "self": self.node_id,
            "shards": placement["shards"],
            "nodes": [
                {
                    "id": member,
                    "self": member == self.node_id,
                    **self.membership.info(member),
                    "shards": sorted(int(s) for s, o in owners.items() if o == member),
                }
                for member in members
            ],
            "owners": owners,
            "unowned": sorted(int(s) for s, o in owners.items() if o is None),
            "held": placement["held"],
            "epochs": placement["epochs"],
            "acquisitions": placement["acquisitions"],
            "losses": placement["losses"],
            "present": self.presence.present,
            "evictions": self.presence.evictions,
            "stats": dict(self.stats),
            "bus": {
                "connected": self.bus.connected,
                "published": self.bus.published,
                "received": self.bus.received,
                "deaf_for": round(self.bus.deaf_for(), 3),
                "dropped": self.pipeliner.dropped,
            },
            "at": time.time(),
        }
