"""The node operations routes call, as narrow interfaces (the node satisfies them), and the view
of the cluster's nodes that ``/admin/api/v1/nodes`` and the drain route read.

Routes get these, like every other service, through the typed keys of ``propdev.http.keys``;
a route's test builds a fake with only the methods it calls.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from propdev.access import OpenOutcome
    from propdev.actors.messages import OpenAccessPoint


class Devices(Protocol):
    """The device actors where they live: on their shard's owner in a cluster, here embedded."""

    async def ask_device(
        self,
        target: str,
        message: object,
        timeout: float | None = None,  # noqa: ASYNC109 - the ask's deadline
    ) -> object:
        """Ask the device actor ``target`` (``device:<access point id>``)."""
        ...

    async def device_presence(self, access_point_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Each access point's ``online``, ``state`` and ``last_seen_age_s``."""
        ...

    async def device_online(self, access_point_ids: Sequence[str]) -> dict[str, bool | None]:
        """Each access point's ``online``: True, False or None (unknown)."""
        ...


class Readiness(Protocol):
    """What ``/readyz`` reports."""

    @property
    def draining(self) -> bool:
        """The node was drained."""
        ...

    async def readiness(self) -> dict[str, bool]:
        """Each check (store, bus, registry, actors, ...) and whether it passes."""
        ...


class Drain(Protocol):
    """Stopping this node's device work (``POST /admin/api/v1/nodes/{node_id}/drain``)."""

    @property
    def draining(self) -> bool:
        """Drained already (there is no undrain)."""
        ...

    async def drain(self) -> dict[str, Any]:
        """Drain (idempotent); the outcome has ``already``, ``shards_handed_off`` and
        ``actors_passivated``."""
        ...


class Opener(Protocol):
    """An open routed to the door's device actor (on its owner node in a cluster), whose
    opening pipeline decides, commands and records it; the answer is a domain outcome."""

    async def open(self, message: OpenAccessPoint) -> OpenOutcome: ...


class Nodes(Protocol):
    """The nodes of the cluster as this node sees them."""

    def snapshot(self) -> dict[str, Any]:
        """The answer of ``GET /admin/api/v1/nodes``."""
        ...

    def peer(self, node_id: str) -> dict[str, Any] | None:
        """Another live member's published info (its ``url``...), or None if it is none."""
        ...


class EmbeddedNodes:
    """One node and no cluster: it holds every shard and has no peers."""

    __slots__ = ("node_id",)

    def __init__(self, node_id: str) -> None:
        self.node_id = node_id

    def snapshot(self) -> dict[str, Any]:
        return {"nodes": [{"id": self.node_id, "self": True, "shards": "all"}]}

    def peer(self, node_id: str) -> dict[str, Any] | None:
        return None


class Members(Protocol):
    """The live members of a cluster (``propdev.registry.Membership``, read only)."""

    def members(self) -> tuple[str, ...]: ...

    def info(self, node_id: str) -> dict[str, Any]: ...


class ClusterState(Protocol):
    """What ``ClusterNodes`` reads of ``propdev.registry.Cluster``."""

    @property
    def node_id(self) -> str: ...

    @property
    def membership(self) -> Members: ...

    def snapshot(self) -> dict[str, Any]: ...


class ClusterNodes:
    """A cluster's members, shards and their owners, from this node's membership."""

    __slots__ = ("cluster",)

    def __init__(self, cluster: ClusterState) -> None:
        self.cluster = cluster

    def snapshot(self) -> dict[str, Any]:
        return self.cluster.snapshot()

    def peer(self, node_id: str) -> dict[str, Any] | None:
        membership = self.cluster.membership
        if node_id == self.cluster.node_id or node_id not in membership.members():
            return None
        return dict(membership.info(node_id))
