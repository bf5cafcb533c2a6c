"""Two vendors of the same protocol, each ``run.py partner-sim`` as its own process over HTTPS:
a partner registered with adapter ``vendor`` and a ``base_url`` gets a gateway of its own, and
when its vendor's process dies its doors answer 502, then 503 from its open breaker, while the
other vendor's doors keep opening."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from propdev.devkit import LOOPBACK, SITE, register_partner, seed_demo
from propdev.storage import Database
from propdev.storage.directory import AccessPoint, Directory
from tests.conftest import free_port
from tests.e2e.conftest import RunningNode, node_settings, running_node
from tests.support.vendor_process import VendorProcess, partner_sim

pytestmark = pytest.mark.slow

VENDOR_B = "vendor-b"
DOOR_A = "ap-a-entrance"  # the demo's, partner simulator (vendor A)
DOOR_B = "ap-b-vendor"  # vendor B's door 3, which boris may open


@dataclass
class Estate:
    node: RunningNode
    vendor_a: VendorProcess  # partner simulator: PROPDEV_PARTNER_URL
    vendor_b: VendorProcess  # partner vendor-b: its partners.base_url

    async def commands(self, vendor: VendorProcess) -> list[str]:
        """The devices of the opens ``vendor`` received, oldest first."""
        return [c["device_id"] for c in await vendor.control("GET", "/sim/v1/commands")]


@pytest.fixture
async def estate(tmp_path: Path) -> AsyncIterator[Estate]:
    ports: set[int] = set()
    while len(ports) < 3:
        ports.add(free_port())
    port_a, port_b, node_port = sorted(ports)
    settings = node_settings(
        tmp_path,
        PROPDEV_PORT=str(node_port),
        PROPDEV_PARTNER_URL=f"https://127.0.0.1:{port_a}",
        PROPDEV_PARTNER_TIMEOUT="2",
        PROPDEV_BREAKER_FAILURES="2",
        PROPDEV_BREAKER_RESET="60",
    )
    credentials = await seed_demo(settings)
    db = Database(settings.database_url)
    try:  # vendor B: its certificate, API key and door, before its process reads the data dir
        await register_partner(
            settings,
            db,
            VENDOR_B,
            LOOPBACK,
            adapter="vendor",
            base_url=f"https://127.0.0.1:{port_b}",
        )
        directory = Directory(db)
        await directory.put_access_point(
            AccessPoint(DOOR_B, "Vendor B door", "door", SITE[0], "bld-b", VENDOR_B, "sim-door-3")
        )
        boris = next(r for r in credentials["residents"] if r["username"] == "boris")
        await directory.grant(boris["id"], DOOR_B)
    finally:
        await db.close()
    callback = settings.public_url
    async with (
        partner_sim(tmp_path, callback_url=callback, port=port_a) as vendor_a,
        partner_sim(tmp_path, callback_url=callback, port=port_b, partner=VENDOR_B) as vendor_b,
        running_node(settings) as node,
    ):
        yield Estate(node, vendor_a, vendor_b)


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
    assert await estate.commands(estate.vendor_a) == ["sim-door-1"]
    assert await estate.commands(estate.vendor_b) == ["sim-door-3"]

    assert await estate.vendor_b.process.stop() == 0  # vendor B is gone: its port refuses
    statuses = [(await open_door(node, boris, DOOR_B)) for _ in range(3)]

    assert [status for status, _ in statuses] == [502, 502, 503]
    assert statuses[2][1]["type"].endswith("partner-circuit-open")
    assert int(statuses[2][1]["Retry-After"]) > 0
    for _ in range(3):  # vendor A's breaker is its own: still closed, still opening
        assert (await open_door(node, anna, DOOR_A))[0] == 200
    assert await estate.commands(estate.vendor_a) == ["sim-door-1"] * 4
