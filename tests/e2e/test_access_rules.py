"""Rights with schedules end to end: the open route and the barrier camera follow the clock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from propdev.access import Schedule
from tests.support.access import AccessNode, access_node

DOOR = "ap-a-entrance"
BARRIER = "ap-parking"
WORKING_HOURS = Schedule.parse(
    {"windows": [{"days": ["mon", "tue", "wed", "thu", "fri"], "from": "09:00", "until": "18:00"}]}
)
# Wednesday 2025-01-15, noon at the demo site (Europe/Moscow).
NOON = datetime(2025, 1, 15, 12, tzinfo=ZoneInfo("Europe/Moscow")).timestamp()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[AccessNode]:
    async with access_node(tmp_path) as running:
        yield running


async def test_a_right_outside_its_schedule_is_a_403_audited_and_never_sent(
    site: AccessNode,
) -> None:
    r = site.running
    anna = r.resident("anna")
    await site.node.access.rules.grant(anna["id"], DOOR, WORKING_HOURS)
    token = await r.token_for("anna")
    open_url = f"{r.url}/api/v1/access-points/{DOOR}/open"

    site.clock.set(NOON)
    async with r.http.post(open_url, headers=bearer(token)) as resp:
        assert resp.status == 200, await resp.text()

    site.clock.set(NOON + 7 * 3600)  # 19:00
    async with r.http.post(open_url, headers=bearer(token)) as resp:
        assert resp.status == 403
        assert resp.content_type == "application/problem+json"
        problem = await resp.json()
    assert problem["reason"] == "outside_schedule"
    async with r.http.get(f"{r.credentials['partner_sim_url']}/sim/v1/commands") as resp:
        assert len(await resp.json()) == 1
    assert [(e["decision"], e["reason"]) for e in await site.audit(DOOR)] == [
        ("granted", ""),
        ("denied", "outside_schedule"),
    ]


async def test_a_plate_follows_its_owners_schedule(site: AccessNode) -> None:
    r = site.running
    boris = r.resident("boris")
    await site.node.access.rules.grant(boris["id"], BARRIER, WORKING_HOURS)
    await site.node.access.vehicles.register(boris["id"], "B777OP99")

    site.clock.set(NOON + 3 * 24 * 3600)  # Saturday noon
    await site.present(BARRIER, "plate_recognized", plate="B777OP99")
    site.clock.set(NOON)
    await site.present(BARRIER, "plate_recognized", plate="B777OP99")
    assert [(e["decision"], e["reason"]) for e in await site.audit(BARRIER)] == [
        ("denied", "outside_schedule"),
        ("granted", ""),
    ]
