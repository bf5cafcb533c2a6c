"""State the cluster's nodes share through Redis: a partner's circuit opens once for the
cluster, SLO figures are the cluster's, and a keypad lockout outlives its device's owner."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from propdev.registry import shard_of
from tests.cluster.conftest import Cluster, Node, bearer, eventually, three_nodes
from tests.cluster.test_cluster import nodes_view
from tests.cluster.test_device_events import DEVICE, DOOR, post_events, reasons
from tests.support.partner import event

pytestmark = pytest.mark.slow

RESIDENT_OF = {  # a resident with a right to each demo door
    "ap-a-entrance": "anna",
    "ap-a-courtyard": "anna",
    "ap-parking": "anna",
    "ap-b-entrance": "boris",
    "ap-b-courtyard": "boris",
}


async def breaker_state(cluster: Cluster, node: Node) -> str | None:
    async with cluster.http.get(f"{node.url}/metrics") as resp:
        assert resp.status == 200
        text = await resp.text()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = sample.labels
            if sample.name == "propdev_partner_breaker_state" and sample.value == 1.0:
                if labels.get("partner") == "simulator":
                    return labels.get("state")
    return None


async def slo_total(cluster: Cluster, node: Node) -> tuple[str, int]:
    async with cluster.http.get(
        f"{node.url}/admin/api/v1/slo", headers=bearer(cluster.tokens["operator"])
    ) as resp:
        assert resp.status == 200, await resp.text()
        report = await resp.json()
    (opens,) = (o for o in report["objectives"] if o["name"] == "door_opens_availability")
    return str(report["scope"]), int(opens["total"])


async def test_a_circuit_opened_by_one_nodes_calls_is_open_on_the_other_and_slos_add_up(
    tmp_path: Path,
) -> None:
    async with three_nodes(
        tmp_path, nodes=2, PROPDEV_BREAKER_FAILURES="2", PROPDEV_BREAKER_RESET="600"
    ) as cluster:
        n1, n2 = cluster.nodes
        owners = await cluster.owners()
        on = {n.name: [d for d in RESIDENT_OF if owners[shard_of(d)] == n.name] for n in (n1, n2)}
        assert on["n1"] and on["n2"], on  # the demo's doors are spread over both nodes
        first, second = on["n1"][0], on["n2"][0]
        await nodes_view(cluster, n1)  # the operator's token

        await cluster.set_faults("slow", latency_ms=4000)  # past the nodes' 2 s partner timeout
        for _ in range(2):
            status, body = await cluster.open(n1, RESIDENT_OF[first], first)
            assert status >= 500, body
        sent = len(await cluster.sim_commands())
        assert sent == 2  # the two calls that timed out reached the vendor
        assert await eventually(
            lambda: _state_is(cluster, n2, "open"), within=10, what="n2 sees the circuit open"
        )
        status, body = await cluster.open(n2, RESIDENT_OF[second], second)
        assert status == 503 and body["type"].endswith("/partner-circuit-open"), body
        assert len(await cluster.sim_commands()) == sent  # n2 never called the vendor

        # Both nodes' opens in either node's SLO report (n1's counts are flushed every few s).
        assert await eventually(
            lambda: _slo_is(cluster, n2, ("cluster", 3)), within=20, what="the cluster's SLO"
        )


async def _state_is(cluster: Cluster, node: Node, state: str) -> bool:
    return await breaker_state(cluster, node) == state


async def _slo_is(cluster: Cluster, node: Node, expected: tuple[str, int]) -> bool:
    return await slo_total(cluster, node) == expected


async def test_a_keypad_lockout_counts_on_across_its_devices_change_of_owner(
    tmp_path: Path,
) -> None:
    async with three_nodes(tmp_path, nodes=2, PROPDEV_KEYPAD_ATTEMPTS="3") as cluster:
        code = await guest_pass(cluster)
        wrong = [f"{(int(code) + i) % 10**8:08d}" for i in (1, 2, 3)]
        owner = cluster.node(str(await cluster.owner_of(DOOR)))
        survivor = next(n for n in cluster.nodes if n is not owner)
        await post_events(
            cluster, survivor, [event(DEVICE, "pass_presented", code=c) for c in wrong[:2]]
        )
        await eventually(
            lambda: _audited(cluster, survivor, 2), within=10, what="two wrong codes audited"
        )

        assert owner.process is not None
        await owner.process.stop()
        await cluster.settled([survivor.name], within=30)
        batch = [event(DEVICE, "pass_presented", code=c) for c in (wrong[2], code)]
        await post_events(cluster, survivor, batch)
        await eventually(
            lambda: _audited(cluster, survivor, 4), within=10, what="the new owner decided"
        )
        assert await reasons(cluster, survivor) == [
            ("denied", "pass_unknown"),
            ("denied", "pass_unknown"),
            ("denied", "pass_unknown"),  # the third at the new owner: the device locks
            ("denied", "locked_out"),  # the right code, refused
        ]


async def _audited(cluster: Cluster, node: Node, n: int) -> bool:
    return len(await reasons(cluster, node)) >= n


async def guest_pass(cluster: Cluster) -> str:
    anna = await cluster.token("anna")
    now = datetime.now(UTC)
    async with cluster.http.post(
        f"{cluster.nodes[0].url}/api/v1/guest-passes",
        json={
            "access_point_ids": [DOOR],
            "valid_from": now.isoformat(),
            "valid_until": (now + timedelta(hours=1)).isoformat(),
            "max_uses": 5,
        },
        headers=bearer(anna),
    ) as resp:
        assert resp.status == 201, await resp.text()
        issued: dict[str, Any] = await resp.json()
    return str(issued["code"])
