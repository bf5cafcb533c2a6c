"""Rights with schedules, decided in the site's time zone against an injected clock."""

from __future__ import annotations

from propdev.access import Schedule
from tests.unit.access.conftest import DOOR, NOON_WEDNESDAY, OTHER_DOOR, Estate, moscow

WORKING_HOURS = Schedule.parse(
    {"windows": [{"days": ["mon", "tue", "wed", "thu", "fri"], "from": "09:00", "until": "18:00"}]}
)


async def test_no_right_is_refused_and_a_plain_right_always_allowed(estate: Estate) -> None:
    assert (await estate.rules.decide(estate.owner, DOOR)).reason == "no_right"
    await estate.rules.grant(estate.owner, DOOR)
    assert (await estate.rules.decide(estate.owner, DOOR)).allowed
    assert (await estate.rules.decide(estate.owner, DOOR, at=moscow(2025, 1, 18, 3, 0))).allowed
    assert not (await estate.rules.decide(estate.owner, OTHER_DOOR)).allowed


async def test_a_scheduled_right_follows_the_clock_in_the_sites_time_zone(estate: Estate) -> None:
    await estate.rules.grant(estate.owner, DOOR, WORKING_HOURS)
    assert (await estate.rules.decide(estate.owner, DOOR)).allowed  # Wednesday noon
    estate.clock.advance(6 * 3600 + 1)  # 18:00:01 in Moscow, 15:00 UTC
    decision = await estate.rules.decide(estate.owner, DOOR)
    assert (decision.allowed, decision.reason) == (False, "outside_schedule")
    assert not (await estate.rules.decide(estate.owner, DOOR, at=moscow(2025, 1, 18, 12))).allowed

    await estate.db.execute("UPDATE sites SET timezone = 'UTC'")
    assert (await estate.rules.decide(estate.owner, DOOR)).allowed  # 15:00 in UTC


async def test_granting_again_replaces_the_schedule_and_withdrawing_removes_the_right(
    estate: Estate,
) -> None:
    await estate.rules.grant(estate.owner, DOOR, WORKING_HOURS)
    assert await estate.rules.schedule_of(estate.owner, DOOR) == WORKING_HOURS
    await estate.rules.grant(estate.owner, DOOR)
    assert await estate.rules.schedule_of(estate.owner, DOOR) is None
    assert await estate.rules.decide(estate.owner, DOOR, at=NOON_WEDNESDAY + 9 * 3600)
    assert await estate.rules.withdraw(estate.owner, DOOR)
    assert not await estate.rules.decide(estate.owner, DOOR)
    assert await estate.rules.without_right(estate.owner, [DOOR, OTHER_DOOR]) == [DOOR, OTHER_DOOR]
