"""Two vendors of the same protocol, each its own HTTPS server: a partner registered with
adapter ``vendor`` and a ``base_url`` gets a gateway of its own, and when its vendor dies its
doors answer 502, then 503 from its open breaker, while the other vendor's doors keep opening."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from propdev.devkit import (
    LOOPBACK,
    SITE,
    PartnerSimServer,
    VendorSimulator,
    register_partner,
    run_partner_sim,
    seed_demo,
)
from propdev.partners import vendor_api_key
from propdev.pki import ensure_ca
from propdev.storage import Database
from propdev.storage.directory import AccessPoint, Directory
from tests.conftest import free_port
from tests.e2e.conftest import RunningNode, node_settings, running_node

VENDOR_B = "vendor-b"
DOOR_A = "ap-a-entrance"  # the demo's, partner simulator (vendor A)
DOOR_B = "ap-b-vendor"  # vendor B's door 3, which boris may open


@dataclass
class Estate:
    node: RunningNode
    sim_a: VendorSimulator
    sim_b: VendorSimulator
    server_b: PartnerSimServer


@pytest.fixture
async def estate(tmp_path: Path) -> AsyncIterator[Estate]:
    port_a, port_b = free_port(), free_port()
    settings = node_settings(
        tmp_path,
        PROPDEV_PARTNER_URL=f"https://127.0.0.1:{port_a}",
        PROPDEV_PARTNER_TIMEOUT="2",
        PROPDEV_BREAKER_FAILURES="2",
        PROPDEV_BREAKER_RESET="60",
    )
    ensure_ca(settings.pki_dir)
    sim_a, sim_b = VendorSimulator(), VendorSimulator()
    server_a = await run_partner_sim(settings, port=port_a, sim=sim_a)
    server_b = await run_partner_sim(
        settings, port=port_b, sim=sim_b, api_key=vendor_api_key(settings.data_dir, VENDOR_B)
    )
    credentials = await seed_demo(settings)
    db = Database(settings.database_url)
    try:
        await register_partner(
            settings, db, VENDOR_B, LOOPBACK, adapter="vendor", base_url=server_b.url
        )
        directory = Directory(db)
        await directory.put_access_point(
            AccessPoint(DOOR_B, "Vendor B door", "door", SITE[0], "bld-b", VENDOR_B, "sim-door-3")
        )
        boris = next(r for r in credentials["residents"] if r["username"] == "boris")
        await directory.grant(boris["id"], DOOR_B)
    finally:
        await db.close()
    try:
        async with running_node(settings) as node:
            yield Estate(node, sim_a, sim_b, server_b)
    finally:
        await server_b.close()
        await server_a.close()


async def open_door(node: RunningNode, token: str, door: str) -> tuple[int, dict[str, str]]:
    headers = {"Authorization": f"Bearer {token}"}
    async with node.http.post(
        f"{node.url}/api/v1/access-points/{door}/open", headers=headers
    ) as resp:
        body = await resp.json()
        return resp.status, {"type": str(body.get("type", "")), **dict(resp.headers)}


async def test_a_dead_vendor_trips_its_own_breaker_and_the_other_vendor_keeps_opening(
    estate: Estate,
) -> None:
    node = estate.node
    anna, boris = await node.token_for("anna"), await node.token_for("boris")

    assert (await open_door(node, anna, DOOR_A))[0] == 200
    assert (await open_door(node, boris, DOOR_B))[0] == 200
    assert [c["device_id"] for c in estate.sim_a.commands()] == ["sim-door-1"]
    assert [c["device_id"] for c in estate.sim_b.commands()] == ["sim-door-3"]

    await estate.server_b.close()  # vendor B is gone: its port refuses connections
    statuses = [(await open_door(node, boris, DOOR_B)) for _ in range(3)]

    assert [status for status, _ in statuses] == [502, 502, 503]
    assert statuses[2][1]["type"].endswith("partner-circuit-open")
    assert int(statuses[2][1]["Retry-After"]) > 0
    for _ in range(3):  # vendor A's breaker is its own: still closed, still opening
        assert (await open_door(node, anna, DOOR_A))[0] == 200
    assert len(estate.sim_a.commands()) == 4
