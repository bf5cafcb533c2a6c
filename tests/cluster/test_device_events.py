"""Partner callbacks in a cluster: applied by the device's owner whichever node they reach, and
decided there against the store (a guest pass revoked through one node is refused at another)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.cluster.conftest import Cluster, Node, bearer, eventually
from tests.cluster.test_cluster import nodes_view
from tests.support.partner import event, partner_client

pytestmark = pytest.mark.slow

DOOR, DEVICE = "ap-a-entrance", "sim-door-1"  # anna's door and its simulator device


async def post_events(cluster: Cluster, node: Node, events: list[dict[str, Any]]) -> Any:
    """A signed batch from the simulator partner (its certificate, its bound token) to ``node``."""
    async with partner_client(node.url, cluster.data_dir, "simulator") as partner:
        status, body = await partner.post(events, token=await partner.token())
    assert status == 202, body
    return body


async def shown(cluster: Cluster, node: Node) -> dict[str, Any]:
    token = await cluster.token("anna")
    async with cluster.http.get(
        f"{node.url}/api/v1/access-points/{DOOR}", headers=bearer(token)
    ) as resp:
        assert resp.status == 200, await resp.text()
        return dict(await resp.json())


async def test_a_device_offline_posted_to_a_non_owner_is_applied_by_the_owner(
    cluster: Cluster,
) -> None:
    owner = await cluster.owner_of(DOOR)
    other = next(n for n in cluster.nodes if n.name != owner)
    batch = [event(DEVICE, "device_online", ago=5), event(DEVICE, "device_offline", ago=1)]

    body = await post_events(cluster, other, batch)

    assert body == {"accepted": 2, "duplicates": 0, "rejected": []}
    for node in cluster.nodes:
        door = await shown(cluster, node)
        assert (door["online"], door["state"]) == (False, "offline"), (node.name, door)
    # The non-owner forwarded (the batch and its snapshot) and never activated the door's actor.
    view = await nodes_view(cluster, other)
    assert view["stats"]["local"] == 0 and view["stats"]["forwarded"] >= 2, view["stats"]
    assert (await nodes_view(cluster, cluster.node(str(owner))))["stats"][
        "served"
    ] >= 3  # the batch, two snapshots
    # A replay through a third node: duplicates, decided by the same owner.
    third = next(n for n in cluster.nodes if n.name not in {owner, other.name})
    assert await post_events(cluster, third, batch[::-1]) == {
        "accepted": 0,
        "duplicates": 2,
        "rejected": [],
    }


async def test_a_guest_pass_revoked_through_one_node_is_refused_at_another_at_once(
    cluster: Cluster,
) -> None:
    owner = await cluster.owner_of(DOOR)
    a = next(n for n in cluster.nodes if n.name != owner)  # revokes
    b = cluster.node(str(owner))  # the presentation is posted here, and decided here
    token = await cluster.token("anna")
    now = datetime.now(UTC)
    grant = {
        "access_point_ids": [DOOR],
        "valid_from": now.isoformat(),
        "valid_until": (now + timedelta(hours=1)).isoformat(),
        "max_uses": 3,
    }
    async with cluster.http.post(
        f"{a.url}/api/v1/guest-passes", json=grant, headers=bearer(token)
    ) as resp:
        assert resp.status == 201, await resp.text()
        issued = await resp.json()
    presented = [event(DEVICE, "pass_presented", code=issued["code"])]
    assert (await post_events(cluster, b, presented))["accepted"] == 1
    await eventually(
        lambda: reasons(cluster, a), within=10, what="the first use audited"
    )  # the open's audit entry commits with its confirmation
    assert len(await cluster.sim_commands()) == 1

    async with cluster.http.delete(
        f"{a.url}/api/v1/guest-passes/{issued['id']}", headers=bearer(token)
    ) as resp:
        assert resp.status == 204
    # The very next presentation, at the owner, is refused: decided against the store, nothing
    # to propagate (no wait, no retry).
    again = [event(DEVICE, "pass_presented", code=issued["code"])]
    assert (await post_events(cluster, b, again))["accepted"] == 1
    assert await reasons(cluster, a) == [("granted", ""), ("denied", "pass_revoked")]
    assert len(await cluster.sim_commands()) == 1  # the revoked code sent nothing


async def reasons(cluster: Cluster, node: Node) -> list[tuple[str, str]]:
    """The door's audit of guest-pass presentations, oldest first (read through ``node``)."""
    await nodes_view(cluster, node)  # logs the operator in once
    async with cluster.http.get(
        f"{node.url}/admin/api/v1/audit",
        params={"access_point_id": DOOR},
        headers=bearer(cluster.tokens["operator"]),
    ) as resp:
        assert resp.status == 200, await resp.text()
        entries = (await resp.json())["entries"]
    return [
        (str(e["decision"]), str(e["reason"]))
        for e in entries
        if str(e["actor"]).startswith("pass:")
    ]
