"""Device-offline pushes to staff, on both stores, through the FCM stand-in: only staff who
opted in and whose scope reaches the device's site, in each account's language, one collapse id
per vendor event, never touched by the residents' release and withhold."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from propdev.push import (
    NO_EVENT,
    FcmProvider,
    Outbox,
    PushPreferences,
    PushSender,
    PushTokens,
    ServiceAccount,
    client_context,
    enqueue_offline,
    offline_collapse_id,
)
from propdev.storage import Database
from tests.support.push_standins import FcmStandIn, StandInCA

RIVERSIDE, HARBOUR = "site-riverside", "site-harbour"
DOOR = "ap-a-entrance"  # at Riverside

# username, roles, sites (None: the organisation), opted in, disabled, locale
ACCOUNTS = [
    ("admin", "admin", None, True, False, "ru"),
    ("river", "operator", [RIVERSIDE], True, False, "en"),
    ("harbour", "operator", [HARBOUR], True, False, "en"),  # out of scope
    ("quiet", "operator", [RIVERSIDE], False, False, "en"),  # did not opt in
    ("gone", "operator", [RIVERSIDE], True, True, "en"),  # disabled
    ("anna", "resident", None, True, False, "en"),  # not staff
    ("both", "auditor,operator", [HARBOUR, RIVERSIDE], True, False, "ru"),
]


def fcm_token(name: str) -> str:
    return f"{name}-phone:" + "T" * 60


@dataclass
class Staffed:
    db: Database
    fcm: FcmStandIn
    sender: PushSender
    preferences: PushPreferences

    async def offline(self, event_id: str, access_point_id: str = DOOR) -> int:
        async with self.db.transaction() as conn:
            return await enqueue_offline(
                conn,
                access_point_id=access_point_id,
                partner_id="simulator",
                event_id=event_id,
                occurred_at=1.0,
                now=2.0,
            )

    def received(self) -> dict[str, dict[str, object]]:
        """Per token: the message FCM got."""
        return {r.body["token"]: r.body for r in self.fcm.received}


@pytest.fixture
async def staffed(
    db: Database, tmp_path: Path, ca: StandInCA, fcm: FcmStandIn
) -> AsyncIterator[Staffed]:
    for site in (RIVERSIDE, HARBOUR):
        await db.execute("INSERT INTO sites (id, name) VALUES (:i, :n)", i=site, n=site.upper())
    await db.execute(
        "INSERT INTO buildings (id, site_id, name) VALUES ('bld-a', :s, 'A')", s=RIVERSIDE
    )
    await db.execute(
        "INSERT INTO partners (id, name, adapter, created_at) "
        "VALUES ('simulator', 'simulator', 'simulator', 0)"
    )
    await db.execute(
        "INSERT INTO access_points (id, building_id, site_id, name, kind, partner_id, device_id) "
        "VALUES (:i, 'bld-a', :s, 'Entrance A', 'door', 'simulator', 'dev-1')",
        i=DOOR,
        s=RIVERSIDE,
    )
    tokens = PushTokens(db)
    preferences = PushPreferences(db)
    for name, roles, sites, opted, disabled, locale in ACCOUNTS:
        await db.execute(
            "INSERT INTO users (id, username, password_hash, roles, created_at, locale) "
            "VALUES (:u, :u, 'x', :r, 0, :l)",
            u=name,
            r=roles,
            l=locale,
        )
        if sites is not None or disabled:
            await db.execute(
                "INSERT INTO staff (user_id, site_ids, created_at, disabled_at) "
                "VALUES (:u, :s, 0, :d)",
                u=name,
                s=None if sites is None else json.dumps(sites),
                d=1.0 if disabled else None,
            )
        await tokens.register(name, {"platform": "fcm", "token": fcm_token(name)})
        await preferences.set(name, device_offline=opted)
    provider = FcmProvider(
        ServiceAccount.from_file(fcm.service_account(tmp_path / "sa.json")),
        base_url=fcm.url,
        ssl_context=client_context(ca.ca_file),
    )
    outbox = Outbox(db, node_id="n1", clock=lambda: 2.0)
    yield Staffed(db, fcm, PushSender(outbox, {"fcm": provider}), preferences)
    await provider.close()


async def test_only_opted_in_active_staff_whose_scope_covers_the_site_are_pushed(
    staffed: Staffed,
) -> None:
    assert await staffed.offline("ev-1") == 3
    assert await staffed.sender.run_once() == 3
    got = staffed.received()
    assert set(got) == {fcm_token("admin"), fcm_token("river"), fcm_token("both")}
    admin, river = got[fcm_token("admin")], got[fcm_token("river")]
    assert admin["notification"] == {
        "title": "Устройство не на связи",
        "body": "Entrance A (SITE-RIVERSIDE): вендор сообщил, что устройство не на связи",
    }
    assert river["notification"]["title"] == "Device offline"
    assert river["data"] == {
        "type": "device.offline",
        "access_point_id": DOOR,
        "site_id": RIVERSIDE,
        "occurred_at": "1.0",
    }
    collapse = {m["android"]["collapse_key"] for m in got.values()}
    assert collapse == {offline_collapse_id("simulator", "ev-1")}


async def test_every_delivery_of_one_vendor_event_has_one_collapse_id_and_another_its_own(
    staffed: Staffed,
) -> None:
    first = offline_collapse_id("simulator", "ev-1")
    assert first == offline_collapse_id("simulator", "ev-1")
    assert first != offline_collapse_id("simulator", "ev-2")
    assert first != offline_collapse_id("other", "ev-1")
    assert len(first) <= 32 and first.isascii()
    await staffed.offline("ev-1")
    await staffed.offline("ev-1")  # a duplicate row (the same event's): the same collapse id
    await staffed.offline("ev-2")
    assert await staffed.sender.run_once() == 9
    keys = [r.body["android"]["collapse_key"] for r in staffed.fcm.received]
    assert sorted(set(keys)) == sorted({first, offline_collapse_id("simulator", "ev-2")})
    assert keys.count(first) == 6


async def test_opting_out_stops_the_pushes_and_the_preference_reads_back(
    staffed: Staffed,
) -> None:
    assert await staffed.preferences.of("river") == {"device_offline": True}
    assert await staffed.preferences.set("river", device_offline=False) == {"device_offline": False}
    assert await staffed.preferences.of("river") == {"device_offline": False}
    assert await staffed.preferences.of("nobody") == {"device_offline": False}
    assert await staffed.offline("ev-3") == 2
    rows = await staffed.db.fetch_all("SELECT user_id FROM push_outbox ORDER BY user_id")
    assert [r["user_id"] for r in rows] == ["admin", "both"]


async def test_an_unknown_device_pushes_nothing(staffed: Staffed) -> None:
    assert await staffed.offline("ev-4", access_point_id="ap-nowhere") == 0


async def test_residents_release_and_withhold_never_touch_staff_rows(staffed: Staffed) -> None:
    await staffed.offline("ev-5")
    outbox = staffed.sender.outbox
    for event_id in (NO_EVENT + 1, 2, 3):
        assert await outbox.withhold(event_id) == 0
    rows = await staffed.db.fetch_all("SELECT event_id, due_at FROM push_outbox")
    assert [(r["event_id"], r["due_at"]) for r in rows] == [(NO_EVENT, 2.0)] * 3
