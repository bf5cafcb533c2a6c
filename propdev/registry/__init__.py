"""Which node owns which actor, cluster membership, and the bus between them.

The embedded default is one node that owns everything, with an in-process bus
(``InProcessBus``, ``InProcessMembership``, ``InProcessPlacement``). With Redis, a ``Cluster``
links nodes: ``RedisBus``, ``RedisMembership``, ``RedisPlacement`` (leases in Redis, fencing
epochs in the store) and each node's ``Inbox`` for messages between nodes.
"""

from __future__ import annotations

from propdev.registry.bus import Bus, Handler, InProcessBus
from propdev.registry.cluster import Cluster, ClusterUnavailableError, ShardGuard
from propdev.registry.connect import close_redis, redis_client, redis_target
from propdev.registry.errors import (
    BusUnavailableError,
    FencedError,
    NotOwnerError,
    RegistryError,
    RemoteAskTimeout,
    RemoteError,
    WireError,
)
from propdev.registry.fence import Fence
from propdev.registry.membership import InProcessMembership, Membership, RedisMembership
from propdev.registry.placement import (
    SHARDS,
    InProcessPlacement,
    Placement,
    RedisPlacement,
    device_hosts,
    preferred_owner,
    shard_of,
)
from propdev.registry.redis_bus import RedisBus
from propdev.registry.revocations import (
    CERTIFICATE,
    GRANT,
    SUBJECT,
    TOKEN,
    Revocations,
    announce,
    honour_revocations,
)

__all__ = (
    "CERTIFICATE",
    "GRANT",
    "SHARDS",
    "SUBJECT",
    "TOKEN",
    "Bus",
    "BusUnavailableError",
    "Cluster",
    "ClusterUnavailableError",
    "Fence",
    "FencedError",
    "Handler",
    "InProcessBus",
    "InProcessMembership",
    "InProcessPlacement",
    "Membership",
    "NotOwnerError",
    "Placement",
    "RedisBus",
    "RedisMembership",
    "RedisPlacement",
    "RegistryError",
    "RemoteAskTimeout",
    "RemoteError",
    "Revocations",
    "ShardGuard",
    "WireError",
    "announce",
    "close_redis",
    "device_hosts",
    "honour_revocations",
    "preferred_owner",
    "redis_client",
    "redis_target",
    "shard_of",
)
