"""Meters and their readings: types, units, sane ranges, and the checks a reading must pass.

A reading is checked in two steps: ``parse_reading`` (the body on its own against the
apartment's meters and the clock) and ``check_progress`` (against the meter's last accepted
reading). Values are ``Decimal`` with at most three decimals; parse JSON bodies with
``parse_float=Decimal`` so nothing is rounded on the way in. A value sent as a string is ASCII
digits with an optional fraction (``"231.405"``): no sign, exponent, spaces or other scripts'
digits.
"""

from __future__ import annotations

import datetime as dt
import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from propdev.housing.errors import InvalidReadingError

THOUSANDTH = Decimal("0.001")
VALUE_TEXT = re.compile(r"[0-9]+(?:\.[0-9]+)?")  # a value sent as a string: "231.405"
MAX_TEXT_VALUE = 32
MAX_FUTURE_SKEW = 300.0  # seconds a phone's clock may run ahead of ours
MAX_AGE = 90 * 86400.0  # a reading taken longer ago is refused
MAX_ID = 64
DAY = 86400.0


class MeterType(enum.StrEnum):
    COLD_WATER = "cold_water"
    HOT_WATER = "hot_water"
    ELECTRICITY_DAY = "electricity_day"
    ELECTRICITY_NIGHT = "electricity_night"
    HEAT = "heat"


@dataclass(frozen=True, slots=True)
class MeterKind:
    """What a meter of one type can show: its unit, the largest value its counter holds, and
    the largest plausible consumption per day (a bigger jump is a typo, not a bath)."""

    unit: str
    maximum: Decimal
    per_day: Decimal


KINDS: Mapping[MeterType, MeterKind] = {
    MeterType.COLD_WATER: MeterKind("m3", Decimal("99999.999"), Decimal("5")),
    MeterType.HOT_WATER: MeterKind("m3", Decimal("99999.999"), Decimal("3")),
    MeterType.ELECTRICITY_DAY: MeterKind("kWh", Decimal("999999.999"), Decimal("150")),
    MeterType.ELECTRICITY_NIGHT: MeterKind("kWh", Decimal("999999.999"), Decimal("150")),
    MeterType.HEAT: MeterKind("Gcal", Decimal("9999.999"), Decimal("1")),
}


@dataclass(frozen=True, slots=True)
class Meter:
    """A meter of an apartment (utilities account)."""

    id: str
    account_id: str
    type: MeterType
    serial: str

    @property
    def kind(self) -> MeterKind:
        return KINDS[self.type]


@dataclass(frozen=True, slots=True)
class Reading:
    """A meter's value at a time (epoch seconds)."""

    meter_id: str
    value: Decimal
    taken_at: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "meter_id": self.meter_id,
            "value": format_value(self.value),
            "taken_at": iso(self.taken_at),
        }


def format_value(value: Decimal) -> str:
    """``123.450`` → ``"123.45"``; never exponent notation."""
    text = format(value.quantize(THOUSANDTH), "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def iso(at: float) -> str:
    return dt.datetime.fromtimestamp(at, dt.UTC).isoformat().replace("+00:00", "Z")


def _value(raw: Any, meter: Meter) -> Decimal:
    if isinstance(raw, bool) or raw is None:
        raise InvalidReadingError("value", "not_a_number", "expected a number such as 123.456")
    if isinstance(raw, str):  # ASCII digits only: Decimal() takes full-width digits, " 1e2 "
        if len(raw) > MAX_TEXT_VALUE or not VALUE_TEXT.fullmatch(raw):
            raise InvalidReadingError("value", "not_a_number", "expected a number such as 123.456")
        value = Decimal(raw)
    elif isinstance(raw, Decimal | int | float):
        value = Decimal(str(raw)) if isinstance(raw, float) else Decimal(raw)
    else:
        raise InvalidReadingError("value", "not_a_number", "expected a number such as 123.456")
    if not value.is_finite():
        raise InvalidReadingError("value", "not_a_number", "expected a number such as 123.456")
    kind = meter.kind
    if value < 0 or value > kind.maximum:
        raise InvalidReadingError(
            "value",
            "out_of_range",
            f"a {meter.type} meter shows 0 to {kind.maximum} {kind.unit}",
            maximum=format_value(kind.maximum),
            unit=kind.unit,
        )
    if value != value.quantize(THOUSANDTH):
        raise InvalidReadingError("value", "too_many_decimals", "at most 3 decimals")
    return value


def _taken_at(raw: Any, *, now: float) -> float:
    if raw is None:
        return now
    if not isinstance(raw, str) or len(raw) > 64:
        raise InvalidReadingError("taken_at", "invalid_time", "expected an ISO 8601 time")
    try:
        parsed = dt.datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidReadingError("taken_at", "invalid_time", "expected an ISO 8601 time") from None
    if parsed.tzinfo is None:
        raise InvalidReadingError("taken_at", "invalid_time", "the time needs a zone")
    at = parsed.timestamp()
    if at > now + MAX_FUTURE_SKEW:
        raise InvalidReadingError("taken_at", "in_the_future", "a reading cannot be in the future")
    if at < now - MAX_AGE:
        raise InvalidReadingError("taken_at", "too_old", "taken more than 90 days ago")
    return at


def parse_reading(body: Any, meters: Mapping[str, Meter], *, now: float) -> Reading:
    """The reading in ``body`` (``{"meter_id", "value", "taken_at"?}``) for one of ``meters``
    (the caller's apartment's); raises ``InvalidReadingError`` naming the field."""
    if not isinstance(body, dict):
        raise InvalidReadingError("body", "not_an_object", "expected a JSON object")
    unknown = set(body) - {"meter_id", "value", "taken_at"}
    if unknown:
        name = sorted(unknown)[0]
        raise InvalidReadingError(name, "unknown_field", "not a field of a meter reading")
    meter_id = body.get("meter_id")
    if not isinstance(meter_id, str) or not 0 < len(meter_id) <= MAX_ID:
        raise InvalidReadingError("meter_id", "missing", "a meter id of your apartment")
    meter = meters.get(meter_id)
    if meter is None:
        raise InvalidReadingError("meter_id", "not_your_meter", "no such meter in your apartment")
    if "value" not in body:
        raise InvalidReadingError("value", "missing", "the value the meter shows")
    value = _value(body["value"], meter)
    return Reading(meter.id, value, _taken_at(body.get("taken_at"), now=now))


def check_progress(reading: Reading, meter: Meter, last: Reading | None) -> None:
    """A meter only counts up, and not absurdly fast: against its last accepted reading."""
    if last is None:
        return
    if reading.taken_at < last.taken_at:
        raise InvalidReadingError(
            "taken_at",
            "before_last_reading",
            f"earlier than the last accepted reading ({iso(last.taken_at)})",
            last_taken_at=iso(last.taken_at),
        )
    if reading.value < last.value:
        raise InvalidReadingError(
            "value",
            "below_last_reading",
            f"below the last accepted reading {format_value(last.value)} {meter.kind.unit}",
            last_value=format_value(last.value),
        )
    days = max(1.0, (reading.taken_at - last.taken_at) / DAY)
    allowed = meter.kind.per_day * Decimal(str(round(days, 3)))
    if reading.value - last.value > allowed:
        raise InvalidReadingError(
            "value",
            "implausible_increase",
            f"{format_value(reading.value - last.value)} {meter.kind.unit} since the last "
            f"reading is more than a {meter.type} meter plausibly counts "
            f"({format_value(allowed)} {meter.kind.unit})",
            last_value=format_value(last.value),
        )
