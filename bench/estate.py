"""More doors for a benchmark's demo estate: access points in the store, devices in the simulator.

A device actor serialises the opens of its door (one command at a time, as a real door takes
them), so a load spread over the demo's five access points measures how fast five doors can
cycle, not what a node can serve: at ~110 opens/s on PostgreSQL each door is busy all the time
(an open holds its door for the vendor's round trip and the command's commit). A portfolio has
thousands of doors, each opened now and then; ``add_doors`` gives a benchmark as many as it has
connections, so that the node (or the cluster) is what the figure measures.

``add_doors`` writes with the product's storage functions (``Directory``) before the nodes start;
``add_sim_devices`` tells the vendor simulator (a process) about the devices behind them;
``with_doors`` returns the demo credentials with the new doors granted to every resident.
"""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path
from typing import Any

import aiohttp

PARTNER = "simulator"  # the demo's partner (propdev.devkit.demo.PARTNER)
SITE, BUILDING = "site-riverside", "bld-a"  # a demo site and building


def door_ids(count: int) -> dict[str, str]:
    """``count`` access point ids and their simulator device ids."""
    return {f"ap-bench-{n:04d}": f"bench-door-{n:04d}" for n in range(count)}


async def add_doors(env: dict[str, str], doors: dict[str, str], residents: list[str]) -> None:
    """Write ``doors`` (access point -> device) to the store of the node configured by ``env``,
    each granted to every user id in ``residents``."""
    from propdev.config import Settings
    from propdev.storage import Database
    from propdev.storage.directory import AccessPoint, Directory

    settings = Settings.from_env(env)
    db = Database(settings.database_url)
    try:
        directory = Directory(db)
        for ap, device in doors.items():
            await directory.put_access_point(
                AccessPoint(ap, f"Bench door {ap[-4:]}", "door", SITE, BUILDING, PARTNER, device)
            )
        await db.execute_many(
            "INSERT INTO rights (user_id, access_point_id) VALUES (:u, :a) "
            "ON CONFLICT (user_id, access_point_id) DO NOTHING",
            [{"u": user, "a": ap} for ap in doors for user in residents],
        )
    finally:
        await db.close()


async def add_sim_devices(
    sim_url: str, ca: Path, devices: dict[str, str], *, passage_ms: int | None = None
) -> None:
    """Register ``devices`` (access point -> device id) with the simulator at ``sim_url``; with
    ``passage_ms``, the simulator also reports an entry that long after each confirmed open."""
    context = ssl.create_default_context(cafile=str(ca))
    connector = aiohttp.TCPConnector(ssl=context, limit=16)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def add(ap: str, device: str) -> None:
            kind = "barrier" if ap.endswith("barrier") else "door"
            body = {"device_id": device, "kind": kind, "name": ap}
            async with session.post(f"{sim_url}/sim/v1/devices", json=body) as resp:
                if resp.status != 201:
                    raise RuntimeError(f"simulator refused {device}: {await resp.text()}")

        items = list(devices.items())
        for at in range(0, len(items), 64):
            await asyncio.gather(*(add(ap, d) for ap, d in items[at : at + 64]))
        if passage_ms is not None:
            async with session.post(
                f"{sim_url}/sim/v1/passages", json={"after_open_ms": passage_ms}
            ) as resp:
                if resp.status != 200:
                    raise RuntimeError(f"simulator passages: {await resp.text()}")


def with_doors(credentials: dict[str, Any], doors: dict[str, str]) -> dict[str, Any]:
    """The demo credentials with ``doors`` among the access points, granted to every resident."""
    points = [
        {"id": ap, "name": ap, "kind": "door", "device_id": device, "partner": PARTNER}
        for ap, device in doors.items()
    ]
    residents = [
        {**r, "access_point_ids": [*r["access_point_ids"], *doors]}
        for r in credentials["residents"]
    ]
    return {
        **credentials,
        "access_points": [*credentials["access_points"], *points],
        "residents": residents,
    }
