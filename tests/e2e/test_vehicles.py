"""Vehicles end to end: a registered plate opens the barrier and tells its owner, live or by
push; unknown plates are denied and audited; the API validates and keeps residents apart.

Our rules (plates, owners, pushes), not a vendor's behaviour: the embedded simulator is the
vendor; plates come as the partner sends them, ``POST /partner/v1/events`` (mTLS, bound token,
signed body).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.access import AccessNode, access_node

BARRIER = "ap-parking"  # anna's and boris's
PLATE_CYRILLIC = "\u0430 123 \u0432\u0441 77"  # a 123 vs 77, typed on a Russian keyboard


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[AccessNode]:
    async with access_node(tmp_path) as running:
        yield running


async def register(site: AccessNode, token: str, plate: object) -> tuple[int, dict[str, Any]]:
    r = site.running
    async with r.http.post(
        f"{r.url}/api/v1/vehicles", json={"plate": plate}, headers=bearer(token)
    ) as resp:
        return resp.status, dict(await resp.json())


async def vehicles_of(site: AccessNode, token: str) -> list[dict[str, Any]]:
    r = site.running
    async with r.http.get(f"{r.url}/api/v1/vehicles", headers=bearer(token)) as resp:
        assert resp.status == 200
        return list(await resp.json())


async def sim_commands(site: AccessNode) -> list[dict[str, Any]]:
    r = site.running
    async with r.http.get(f"{r.credentials['partner_sim_url']}/sim/v1/commands") as resp:
        return list(await resp.json())


async def test_a_registered_plate_opens_the_barrier_and_the_resident_sees_it_live(
    site: AccessNode,
) -> None:
    r = site.running
    token = await r.token_for("anna")
    status, vehicle = await register(site, token, PLATE_CYRILLIC)
    assert status == 201 and vehicle["plate"] == "A123BC77"

    async with r.http.post(
        f"{r.url}/api/v1/me/push-tokens",
        json={"platform": "fcm", "token": "anna-phone:" + "a" * 40},
        headers=bearer(token),
    ) as resp:
        assert resp.status == 201
    async with r.http.ws_connect(f"{r.url}/api/v1/ws", headers=bearer(token)) as ws:
        assert (
            await site.partner_posts(BARRIER, "plate_recognized", plate="A123-BC-77") == "accepted"
        )
        told = await asyncio.wait_for(ws.receive_json(), timeout=10)
        await asyncio.wait_for(site.node.access.notifier.idle(), timeout=10)
    assert (told["type"], told["access_point_id"], told["plate_hint"]) == (
        "access.automatic",
        BARRIER,
        "C77",
    )
    assert "A123BC77" not in str(told)
    (command,) = await sim_commands(site)
    assert (command["device_id"], command["request_id"]) == (
        site.device_of(BARRIER),
        told["command_id"],
    )
    assert site.push.sent == []  # the app was open: no push, and none pending
    assert site.node.access.notifier.withheld == 1
    assert await site.node.access.outbox.pending() == 0

    async with r.http.get(f"{r.url}/api/v1/events", headers=bearer(token)) as resp:
        assert told["id"] in [e["id"] for e in await resp.json()]
    (entry,) = await site.audit(BARRIER)
    assert (entry["actor"], entry["decision"]) == (f"vehicle:{vehicle['id']}", "granted")


async def test_with_the_app_closed_the_resident_gets_a_push(site: AccessNode) -> None:
    r = site.running
    token = await r.token_for("boris")
    assert (await register(site, token, "B777OP99"))[0] == 201
    device = "boris-phone:" + "b" * 40
    async with r.http.post(
        f"{r.url}/api/v1/me/push-tokens",
        json={"platform": "fcm", "token": device, "locale": "en"},
        headers=bearer(token),
    ) as resp:
        assert resp.status == 201, await resp.text()
    await site.partner_posts(BARRIER, "plate_recognized", plate="B777OP99")
    ((to, push),) = await site.push.wait_for(1)
    assert to == device
    assert push.data["type"] == "access.automatic" and "P99" in push.body
    assert push.title == "Barrier opened for your car"


async def test_an_unknown_plate_is_denied_and_audited_and_nothing_is_sent(
    site: AccessNode,
) -> None:
    assert await site.partner_posts(BARRIER, "plate_recognized", plate="X999XX99") == "accepted"
    assert await sim_commands(site) == []
    (entry,) = await site.audit(BARRIER)
    assert (entry["decision"], entry["reason"]) == ("denied", "unknown_plate")
    assert entry["actor"].startswith("plate:") and "X999XX99" not in entry["actor"]


async def test_bad_plates_conflicts_and_other_residents_vehicles(site: AccessNode) -> None:
    r = site.running
    anna = await r.token_for("anna")
    boris = await r.token_for("boris")
    for bad in ("ABC", "12345", "\u0416123\u0416\u041677", 42, None):
        status, problem = await register(site, anna, bad)
        assert (status, problem["status"], problem["field"]) == (422, 422, "plate"), problem
    async with r.http.post(
        f"{r.url}/api/v1/vehicles", data=b"plate=A123BC77", headers=bearer(anna)
    ) as resp:  # not declared JSON
        assert resp.status == 415 and resp.content_type == "application/problem+json"
    async with r.http.post(
        f"{r.url}/api/v1/vehicles",
        data=b"plate=A123BC77",
        headers={**bearer(anna), "Content-Type": "application/json"},
    ) as resp:  # declared JSON, and is not
        assert resp.status == 400 and resp.content_type == "application/problem+json"
    assert await vehicles_of(site, anna) == []

    status, vehicle = await register(site, anna, "A123BC77")
    assert status == 201
    assert (await register(site, anna, "a 123 bc 77")) == (200, vehicle)
    status, problem = await register(site, boris, PLATE_CYRILLIC)
    assert (status, problem["field"]) == (409, "plate")
    assert await vehicles_of(site, boris) == []

    async with r.http.delete(
        f"{r.url}/api/v1/vehicles/{vehicle['id']}", headers=bearer(boris)
    ) as resp:
        assert resp.status == 404
    assert await vehicles_of(site, anna) == [vehicle]
    async with r.http.delete(
        f"{r.url}/api/v1/vehicles/{vehicle['id']}", headers=bearer(anna)
    ) as resp:
        assert resp.status == 204
    await site.partner_posts(BARRIER, "plate_recognized", plate="A123BC77")
    assert await sim_commands(site) == []  # removed: the plate is unknown again


async def test_the_vendors_callback_opens_the_barrier_once_even_when_delivered_twice(
    site: AccessNode,
) -> None:
    token = await site.running.token_for("anna")
    assert (await register(site, token, "A123BC77"))[0] == 201
    sim = site.node.simulator
    assert sim is not None
    event = await sim.emit_event(site.device_of(BARRIER), "plate_recognized", plate="a123bc77")
    # The vendor delivers it again, over the partner API: a duplicate, nothing opens twice.
    status, again = await site.partner.post([event], token=await site.partner.token())
    assert (status, again["duplicates"], again["accepted"]) == (202, 1, 0), again
    assert len(await sim_commands(site)) == 1
    assert [e["decision"] for e in await site.audit(BARRIER)] == ["granted"]
