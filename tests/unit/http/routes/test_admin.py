"""The operators' breakers and nodes routes, each on an application holding only what it
reads: the partners' gateways, the view of the nodes."""

from __future__ import annotations

from typing import Any

import pytest

from propdev.http.keys import NODES, PARTNER_GATEWAYS
from propdev.http.routes import admin
from propdev.http.services import ClusterNodes, EmbeddedNodes
from propdev.partners import (
    DeviceInfo,
    DeviceStatus,
    OpenResult,
    PartnerGateway,
    PartnerUnavailableError,
)
from tests.support.routes import ClientFactory, TwoNodes, caller, route_app

OPERATOR = caller("u-op", "operator")


class DownAdapter:
    """A partner whose every call fails."""

    def __init__(self, partner_id: str) -> None:
        self.partner_id = partner_id

    async def open(
        self, device_id: str, *, request_id: str, traceparent: str | None = None
    ) -> OpenResult:
        raise PartnerUnavailableError("down")

    async def device_status(self, device_id: str) -> DeviceStatus:
        raise PartnerUnavailableError("down")

    async def list_devices(self) -> list[DeviceInfo]:
        return []

    async def close(self) -> None:
        pass


def gateway(partner_id: str) -> PartnerGateway:
    return PartnerGateway(
        DownAdapter(partner_id), timeout=1.0, breaker_failures=1, breaker_reset=60.0
    )


async def test_the_breakers_are_each_gateways_snapshot_an_open_one_included(
    aiohttp_client: ClientFactory,
) -> None:
    gateways = {"acme": gateway("acme"), "globex": gateway("globex")}
    with pytest.raises(PartnerUnavailableError):
        await gateways["globex"].open("door-1", request_id="r1")  # one failure opens it
    app = route_app(admin.routes, calling=OPERATOR)
    app[PARTNER_GATEWAYS] = gateways
    client = await aiohttp_client(app)

    resp = await client.get("/admin/api/v1/breakers")

    assert resp.status == 200
    states = {b["partner_id"]: b["state"] for b in (await resp.json())["breakers"]}
    assert states == {"acme": "closed", "globex": "open"}


async def test_an_embedded_node_lists_itself_holding_every_shard(
    aiohttp_client: ClientFactory,
) -> None:
    app = route_app(admin.routes, calling=OPERATOR)
    app[NODES] = EmbeddedNodes("n-7")
    client = await aiohttp_client(app)

    resp = await client.get("/admin/api/v1/nodes")

    assert (resp.status, await resp.json()) == (
        200,
        {"nodes": [{"id": "n-7", "self": True, "shards": "all"}]},
    )


async def test_a_cluster_node_answers_with_the_clusters_view(
    aiohttp_client: ClientFactory,
) -> None:
    app = route_app(admin.routes, calling=OPERATOR)
    app[NODES] = TwoNodes()
    client = await aiohttp_client(app)

    resp = await client.get("/admin/api/v1/nodes")

    assert [n["id"] for n in (await resp.json())["nodes"]] == ["n-1", "n-2"]


class Membership:
    def __init__(self, members: dict[str, dict[str, Any]]) -> None:
        self._members = members

    def members(self) -> tuple[str, ...]:
        return tuple(sorted(self._members))

    def info(self, node_id: str) -> dict[str, Any]:
        return self._members.get(node_id, {})


class Cluster:
    node_id = "n-1"

    def __init__(self) -> None:
        self.membership = Membership({"n-1": {"url": "https://a"}, "n-2": {"url": "https://b"}})

    def snapshot(self) -> dict[str, Any]:
        return {"self": self.node_id, "nodes": [{"id": m} for m in self.membership.members()]}


def test_a_clusters_peers_are_its_other_live_members_with_their_info() -> None:
    nodes = ClusterNodes(Cluster())

    assert nodes.peer("n-2") == {"url": "https://b"}
    assert nodes.peer("n-1") is None  # this node is no peer of its own
    assert nodes.peer("n-3") is None
    assert [n["id"] for n in nodes.snapshot()["nodes"]] == ["n-1", "n-2"]
