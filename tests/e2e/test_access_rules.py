"""Rights with schedules end to end: the open route and the barrier camera follow the clock.

Our own rules, not a vendor's behaviour: the embedded simulator is the vendor; the camera's
plates come as the partner sends them, ``POST /partner/v1/events`` (mTLS, bound token, signed
body), seen at the node's (injected) clock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, time, timedelta
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
MOSCOW = ZoneInfo("Europe/Moscow")
NOON = datetime(2025, 1, 15, 12, tzinfo=MOSCOW).timestamp()


def a_wednesday_noon_at_least(days: int) -> float:
    """Noon of the first Wednesday ``days`` or more days from now at the demo site."""
    day = datetime.now(MOSCOW).date() + timedelta(days=days)
    while day.weekday() != 2:
        day += timedelta(days=1)
    return datetime.combine(day, time(12), tzinfo=MOSCOW).timestamp()


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
    await site.partner_posts(BARRIER, "plate_recognized", plate="B777OP99")
    site.clock.set(NOON)
    await site.partner_posts(BARRIER, "plate_recognized", plate="B777OP99")
    # The node's clock days past the wall clock: the event seen then is judged by the node's
    # time (not refused as from the future) and decided on that Wednesday's schedule.
    site.clock.set(a_wednesday_noon_at_least(days=3))
    assert await site.partner_posts(BARRIER, "plate_recognized", plate="B777OP99") == "accepted"
    assert [(e["decision"], e["reason"]) for e in await site.audit(BARRIER)] == [
        ("denied", "outside_schedule"),
        ("granted", ""),
        ("granted", ""),
    ]
