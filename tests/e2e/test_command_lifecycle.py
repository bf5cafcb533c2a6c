"""Tap to passage with the vendors as their own process: ``run.py partner-sim`` calls the node
back over mTLS (certificate, bound token, signed body) as partners ``simulator`` and ``acme``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from propdev.config import Settings
from tests.support.partner import ACME_DOOR, add_acme_door
from tests.support.stack import node_and_vendor

pytestmark = pytest.mark.slow


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def next_event(ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
    return dict(await asyncio.wait_for(ws.receive_json(), timeout=15))


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[tuple[aiohttp.ClientSession, str, str, str]]:
    """(http, node url, simulator url, anna's token) with both running as processes."""
    data_dir = tmp_path / "data"
    await add_acme_door(Settings.from_env({"PROPDEV_DATA_DIR": str(data_dir)}))
    async with node_and_vendor(data_dir, tmp_path / "logs") as s:
        yield s.http, s.url, s.sim_url, s.token


async def test_an_open_is_followed_by_its_entry_from_each_vendor_process(
    stack: tuple[aiohttp.ClientSession, str, str, str],
) -> None:
    http, url, sim_url, token = stack
    for control in ("/sim/v1", "/sim/acme/v1"):
        async with http.post(f"{sim_url}{control}/passages", json={"after_open_ms": 50}) as resp:
            assert resp.status == 200
    async with http.ws_connect(f"{url}/api/v1/ws", headers=bearer(token)) as ws:
        for door in ("ap-a-entrance", ACME_DOOR, "ap-parking"):
            async with http.post(
                f"{url}/api/v1/access-points/{door}/open", headers=bearer(token)
            ) as resp:
                assert resp.status == 200, await resp.text()
                opened = await resp.json()
            granted, entry = await next_event(ws), await next_event(ws)
            assert (granted["type"], granted["command_id"]) == (
                "access.granted",
                opened["command_id"],
            )
            assert (entry["type"], entry["command_id"]) == ("access.entry", opened["command_id"])
            async with http.get(
                f"{url}/api/v1/commands/{opened['command_id']}", headers=bearer(token)
            ) as resp:
                command = await resp.json()
            assert [s["step"] for s in command["steps"]] == [
                "requested",
                "decided",
                "accepted",
                "confirmed",
                "entry",
            ], (door, command)
            assert command["passage"]["type"] == "entry"
            if door == "ap-parking":
                assert entry["plate"] and command["steps"][-1]["plate"] == entry["plate"]


async def test_a_device_toggled_at_the_vendor_shows_offline_then_online(
    stack: tuple[aiohttp.ClientSession, str, str, str],
) -> None:
    http, url, sim_url, token = stack

    async def courtyard() -> dict[str, Any]:
        async with http.get(f"{url}/api/v1/access-points", headers=bearer(token)) as resp:
            return next(p for p in await resp.json() if p["id"] == "ap-a-courtyard")

    for online in (False, True):
        async with http.patch(
            f"{sim_url}/sim/v1/devices/sim-door-2", json={"online": online}
        ) as resp:
            assert resp.status == 200
        # Kept: the flush is how this test knows the report was applied before it reads the
        # door's state (nothing to do with a report waiting behind an open).
        async with http.post(f"{sim_url}/sim/v1/callbacks/flush") as resp:
            assert resp.status == 204  # the callback was delivered (and answered 202)
        shown = await courtyard()
        assert (shown["online"], shown["state"]) == (online, "online" if online else "offline")
