"""Partners as data in a cluster: a partner registered, changed or deleted through one node is
applied by every other node within a second (the bus's ``partners:`` channel), no restart.

What each node applies shows in its own ``/admin/api/v1/breakers`` (its gateways: the bulkhead
is ``max_in_flight``), not in the store, which every node reads alike."""

from __future__ import annotations

from typing import Any

import pytest

from tests.cluster.conftest import Cluster, Node, bearer
from tests.support.eventually import eventually
from tests.support.oauth_client import login

pytestmark = pytest.mark.slow

WITHIN = 1.0  # the bound: every node sees a change within a second
NAME = "vendor-e"


async def operator_token(cluster: Cluster) -> str:
    op = cluster.creds["operator"]
    tokens = await login(
        cluster.http,
        cluster.nodes[0].url,
        client_id=cluster.creds["mobile_client_id"],
        redirect_uri=cluster.creds["redirect_uri"],
        username=op["username"],
        password=op["password"],
        totp_secret=op["totp_secret"],
    )
    return str(tokens["access_token"])


async def gateway_on(cluster: Cluster, node: Node, token: str) -> dict[str, Any] | None:
    async with cluster.http.get(f"{node.url}/admin/api/v1/breakers", headers=bearer(token)) as r:
        assert r.status == 200
        found = [b for b in (await r.json())["breakers"] if b["partner_id"] == NAME]
    return found[0] if found else None


async def seen_by_all(cluster: Cluster, token: str, expected: int | None) -> None:
    """Each node's gateway of the partner has bulkhead ``expected`` (None: no gateway), within
    ``WITHIN`` seconds of the change's answer."""
    for node in cluster.nodes:

        async def applied(node: Node = node) -> bool:
            gateway = await gateway_on(cluster, node, token)
            if expected is None:
                return gateway is None
            return gateway is not None and gateway["max_in_flight"] == expected

        await eventually(applied, within=WITHIN, every=0.02, what=f"{node.name}: {expected}")


async def test_a_partner_change_through_one_node_is_applied_by_every_node_within_a_second(
    cluster: Cluster,
) -> None:
    a, b, c = cluster.nodes
    token = await operator_token(cluster)
    assert all([await gateway_on(cluster, n, token) is None for n in cluster.nodes])

    body = {
        "name": NAME,
        "adapter": "simulator",
        "base_url": "https://127.0.0.1:1",
        "allow_ips": ["127.0.0.0/8"],
        "bulkhead": 5,
    }
    async with cluster.http.post(
        f"{a.url}/admin/api/v1/partners", json=body, headers=bearer(token)
    ) as resp:
        assert resp.status == 201, await resp.text()
    await seen_by_all(cluster, token, 5)

    async with cluster.http.patch(
        f"{b.url}/admin/api/v1/partners/{NAME}", json={"bulkhead": 7}, headers=bearer(token)
    ) as resp:
        assert resp.status == 200, await resp.text()
    await seen_by_all(cluster, token, 7)

    async with cluster.http.delete(
        f"{c.url}/admin/api/v1/partners/{NAME}", headers=bearer(token)
    ) as resp:
        assert resp.status == 204
    await seen_by_all(cluster, token, None)
    assert all(n.process is not None and n.process.returncode is None for n in cluster.nodes)
