"""Schedules: weekly windows in local time, past midnight, and clear errors."""

from __future__ import annotations

from datetime import datetime

import pytest

from propdev.access import InvalidScheduleError, Schedule


def at(day: int, hour: int, minute: int = 0) -> datetime:
    """A moment in the week of Monday 2025-01-13 (day 0 = Monday)."""
    return datetime(2025, 1, 13 + day, hour, minute)


def test_a_working_day_window_allows_inside_and_refuses_outside_and_on_weekends() -> None:
    schedule = Schedule.parse(
        {
            "windows": [
                {"days": ["mon", "tue", "wed", "thu", "fri"], "from": "08:00", "until": "20:00"}
            ]
        }
    )
    assert schedule.allows(at(2, 8, 0))
    assert schedule.allows(at(2, 19, 59))
    assert not schedule.allows(at(2, 20, 0))
    assert not schedule.allows(at(2, 7, 59))
    assert not schedule.allows(at(5, 12))


def test_a_window_past_midnight_belongs_to_the_day_it_starts() -> None:
    schedule = Schedule.parse({"windows": [{"days": ["sat"], "from": "22:00", "until": "02:00"}]})
    assert schedule.allows(at(5, 23))  # Saturday night
    assert schedule.allows(at(6, 1, 59))  # early Sunday
    assert not schedule.allows(at(6, 2))
    assert not schedule.allows(at(0, 1))  # early Monday: Sunday is not listed
    assert not schedule.allows(at(4, 23))  # Friday night


def test_until_midnight_and_round_trip_through_json() -> None:
    schedule = Schedule.parse({"windows": [{"days": ["sun"], "from": "18:00", "until": "24:00"}]})
    assert schedule.allows(at(6, 23, 59)) and not schedule.allows(at(6, 17, 59))
    assert Schedule.parse(schedule.dumps()) == schedule


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ({}, "schedule"),
        ({"windows": []}, "schedule.windows"),
        (
            {"windows": [{"days": ["someday"], "from": "08:00", "until": "09:00"}]},
            "schedule.windows[0].days",
        ),
        (
            {"windows": [{"days": ["mon"], "from": "8am", "until": "09:00"}]},
            "schedule.windows[0].from",
        ),
        (
            {"windows": [{"days": ["mon"], "from": "08:00", "until": "25:00"}]},
            "schedule.windows[0].until",
        ),
        (
            {"windows": [{"days": ["mon"], "from": "08:00", "until": "08:00"}]},
            "schedule.windows[0]",
        ),
        ("not json", "schedule"),
    ],
)
def test_a_bad_schedule_names_the_field(raw: object, field: str) -> None:
    with pytest.raises(InvalidScheduleError) as caught:
        Schedule.parse(raw)
    assert caught.value.field == field
