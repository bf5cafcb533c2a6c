"""Meter readings are checked field by field before anything is forwarded."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from propdev.housing import (
    InvalidReadingError,
    Meter,
    MeterType,
    Reading,
    check_progress,
    format_value,
    parse_reading,
)

NOW = 1_800_000_000.0
DAY = 86400.0
COLD = Meter("m-cw", "LS-1", MeterType.COLD_WATER, "CW-1")
HEAT = Meter("m-ht", "LS-1", MeterType.HEAT, "HT-1")
METERS = {m.id: m for m in (COLD, HEAT)}


def body(text: str) -> Any:
    return json.loads(text, parse_float=Decimal)


def reason_of(raw: Any) -> tuple[str, str]:
    with pytest.raises(InvalidReadingError) as caught:
        parse_reading(raw, METERS, now=NOW)
    return caught.value.field, caught.value.reason


def test_a_good_reading_keeps_its_exact_decimal_value_and_defaults_to_now() -> None:
    reading = parse_reading(body('{"meter_id": "m-cw", "value": 231.405}'), METERS, now=NOW)
    assert reading == Reading("m-cw", Decimal("231.405"), NOW)
    assert format_value(reading.value) == "231.405"
    as_text = parse_reading({"meter_id": "m-ht", "value": "14.2"}, METERS, now=NOW)
    assert as_text.value == Decimal("14.2")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ([], ("body", "not_an_object")),
        ({"value": 1}, ("meter_id", "missing")),
        ({"meter_id": "m-other", "value": 1}, ("meter_id", "not_your_meter")),
        ({"meter_id": "m-cw"}, ("value", "missing")),
        ({"meter_id": "m-cw", "value": True}, ("value", "not_a_number")),
        ({"meter_id": "m-cw", "value": "NaN"}, ("value", "not_a_number")),
        ({"meter_id": "m-cw", "value": -0.001}, ("value", "out_of_range")),
        ({"meter_id": "m-cw", "value": 100000}, ("value", "out_of_range")),
        ({"meter_id": "m-ht", "value": 10000}, ("value", "out_of_range")),  # Gcal: 9999.999
        ({"meter_id": "m-cw", "value": "1.0005"}, ("value", "too_many_decimals")),
        ({"meter_id": "m-cw", "value": "\uff11\uff12\uff13"}, ("value", "not_a_number")),
        ({"meter_id": "m-cw", "value": "12\u0663"}, ("value", "not_a_number")),  # Arabic-Indic
        ({"meter_id": "m-cw", "value": " 123 "}, ("value", "not_a_number")),
        ({"meter_id": "m-cw", "value": "1e2"}, ("value", "not_a_number")),
        ({"meter_id": "m-cw", "value": "+1"}, ("value", "not_a_number")),
        ({"meter_id": "m-cw", "value": "1_000"}, ("value", "not_a_number")),
        ({"meter_id": "m-cw", "value": 1, "taken_at": "yesterday"}, ("taken_at", "invalid_time")),
        (
            {"meter_id": "m-cw", "value": 1, "taken_at": "2027-01-15T10:00:00"},
            ("taken_at", "invalid_time"),
        ),
        ({"meter_id": "m-cw", "value": 1, "extra": 1}, ("extra", "unknown_field")),
    ],
)
def test_each_bad_field_is_named(raw: Any, expected: tuple[str, str]) -> None:
    assert reason_of(raw) == expected


def test_a_reading_in_the_future_or_too_old_is_refused_but_clock_skew_is_tolerated() -> None:
    import datetime as dt

    def at(offset: float) -> str:
        return dt.datetime.fromtimestamp(NOW + offset, dt.UTC).isoformat()

    assert reason_of({"meter_id": "m-cw", "value": 1, "taken_at": at(3600)}) == (
        "taken_at",
        "in_the_future",
    )
    assert reason_of({"meter_id": "m-cw", "value": 1, "taken_at": at(-100 * DAY)}) == (
        "taken_at",
        "too_old",
    )
    skewed = parse_reading({"meter_id": "m-cw", "value": 1, "taken_at": at(60)}, METERS, now=NOW)
    assert skewed.taken_at == NOW + 60


def test_progress_is_monotonic_and_plausible_against_the_last_reading() -> None:
    last = Reading("m-cw", Decimal("100.000"), NOW - 10 * DAY)
    check_progress(Reading("m-cw", Decimal("100.000"), NOW), COLD, last)  # unchanged: fine
    check_progress(Reading("m-cw", Decimal("150.000"), NOW), COLD, last)  # 5 m3/day for 10 days
    with pytest.raises(InvalidReadingError) as below:
        check_progress(Reading("m-cw", Decimal("99.999"), NOW), COLD, last)
    assert (below.value.field, below.value.reason) == ("value", "below_last_reading")
    assert below.value.extra["last_value"] == "100"
    with pytest.raises(InvalidReadingError) as jump:
        check_progress(Reading("m-cw", Decimal("150.001"), NOW), COLD, last)
    assert (jump.value.field, jump.value.reason) == ("value", "implausible_increase")
    with pytest.raises(InvalidReadingError) as earlier:
        check_progress(Reading("m-cw", Decimal("101"), NOW - 11 * DAY), COLD, last)
    assert (earlier.value.field, earlier.value.reason) == ("taken_at", "before_last_reading")
    check_progress(Reading("m-cw", Decimal("0"), NOW), COLD, None)  # no history: range only
