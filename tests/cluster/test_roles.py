"""Node roles (``PROPDEV_ROLES``): a gateway-only node serves the API and hosts no device
actor; devices-only nodes host them all and serve only their probes and metrics."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from tests.cluster.conftest import Cluster, three_nodes

pytestmark = pytest.mark.slow


def _roles(i: int) -> dict[str, str]:
    return {"PROPDEV_ROLES": "gateway" if i == 0 else "devices"}


async def test_a_gateway_serves_opens_whose_doors_live_on_the_devices_nodes(
    tmp_path: Path,
) -> None:
    async with three_nodes(tmp_path, per_node=_roles) as cluster:
        gateway, *devices = cluster.nodes
        owners = await cluster.owners()
        assert set(owners.values()) == {n.name for n in devices}, owners
        assert all(node.devices for node in devices) and not gateway.devices

        granted = []
        doors = cluster.resident("anna")["access_point_ids"]
        for door in doors:
            status, body = await cluster.open(gateway, "anna", door)
            assert status == 200, body
            granted.append(body["command_id"])
        # Each door was opened on its owner, a devices node; the gateway forwarded.
        assert await _nodes_view_holds_nothing(cluster, gateway.url)
        with psycopg.connect(cluster.database_url) as conn:
            rows = conn.execute(
                "SELECT command_id, count(*) FROM audit WHERE command_id = ANY(%s) "
                "GROUP BY command_id",
                (granted,),
            ).fetchall()
        assert {str(r[0]): int(r[1]) for r in rows} == {c: 1 for c in granted}

        # A devices node answers its probes and the scrapers, and nothing of the public API.
        for node in devices:
            for path, expected in (
                ("/healthz", 200),
                ("/readyz", 200),
                ("/metrics", 200),
                ("/api/v1/access-points", 404),
                ("/oauth/authorize", 404),
                ("/.well-known/openid-configuration", 404),
            ):
                async with cluster.http.get(f"{node.url}{path}") as resp:
                    assert resp.status == expected, (node.name, path, resp.status)
        async with cluster.http.get(f"{gateway.url}/readyz") as resp:
            assert resp.status == 200


async def _nodes_view_holds_nothing(cluster: Cluster, url: str) -> bool:
    """The gateway's /metrics: it holds no shard (``propdev_cluster_shards_held`` is 0)."""
    async with cluster.http.get(f"{url}/metrics") as resp:
        text = await resp.text()
    held = [line for line in text.splitlines() if line.startswith("propdev_cluster_shards_held")]
    assert held, text[:2000]
    return all(float(line.rsplit(" ", 1)[1]) == 0 for line in held)
