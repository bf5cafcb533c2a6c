"""When a right applies: weekly windows in the site's local time.

A schedule is a list of windows, each a set of weekdays and a start and end time of day::

    {"windows": [{"days": ["mon", "tue", "wed", "thu", "fri"], "from": "07:00", "until": "22:00"},
                 {"days": ["sat"], "from": "22:00", "until": "02:00"}]}

A window whose ``until`` is not after its ``from`` runs past midnight: it belongs to the day it
starts on (the Saturday window above lets the holder in until 02:00 on Sunday). ``until`` may
be ``"24:00"``. A right without a schedule applies at all times.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from propdev.access.errors import InvalidScheduleError

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MAX_WINDOWS = 28
_TIME = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


def _minutes(value: object, field: str) -> int:
    if value == "24:00" and field.endswith("until"):
        return 24 * 60
    if not isinstance(value, str) or not (match := _TIME.match(value)):
        raise InvalidScheduleError(field, "expected a time of day HH:MM")
    return int(match.group(1)) * 60 + int(match.group(2))


def _clock(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


@dataclass(frozen=True, slots=True)
class Window:
    """Weekdays (0 = Monday) and a span of minutes from midnight; ``end <= start`` wraps."""

    days: frozenset[int]
    start: int
    end: int

    def contains(self, local: datetime) -> bool:
        minute = local.hour * 60 + local.minute
        today = local.weekday()
        if self.start < self.end:
            return today in self.days and self.start <= minute < self.end
        # past midnight: the evening part today, the early part on the day after a listed day
        yesterday = (today - 1) % 7
        return (today in self.days and minute >= self.start) or (
            yesterday in self.days and minute < self.end
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "days": [DAYS[d] for d in sorted(self.days)],
            "from": _clock(self.start),
            "until": _clock(self.end),
        }


@dataclass(frozen=True, slots=True)
class Schedule:
    """A set of weekly windows; a moment is allowed when any window contains it."""

    windows: tuple[Window, ...]

    def allows(self, local: datetime) -> bool:
        return any(w.contains(local) for w in self.windows)

    def to_json(self) -> dict[str, Any]:
        return {"windows": [w.to_json() for w in self.windows]}

    def dumps(self) -> str:
        return json.dumps(self.to_json(), separators=(",", ":"))

    @classmethod
    def parse(cls, raw: object, field: str = "schedule") -> Schedule:
        """Validate ``raw`` (a dict as above, or its JSON text)."""
        if isinstance(raw, str):
            try:
                raw = json.loads(raw)
            except ValueError:
                raise InvalidScheduleError(field, "not valid JSON") from None
        if not isinstance(raw, dict) or not isinstance(raw.get("windows"), list):
            raise InvalidScheduleError(field, 'expected {"windows": [...]}')
        items = raw["windows"]
        if not 1 <= len(items) <= MAX_WINDOWS:
            raise InvalidScheduleError(f"{field}.windows", f"expected 1 to {MAX_WINDOWS} windows")
        windows = []
        for i, item in enumerate(items):
            where = f"{field}.windows[{i}]"
            if not isinstance(item, dict):
                raise InvalidScheduleError(where, "expected an object")
            days = item.get("days")
            if (
                not isinstance(days, list)
                or not days
                or not all(isinstance(d, str) and d.lower() in DAYS for d in days)
            ):
                raise InvalidScheduleError(f"{where}.days", f"expected weekdays among {DAYS}")
            start = _minutes(item.get("from"), f"{where}.from")
            end = _minutes(item.get("until"), f"{where}.until")
            if start == end:
                raise InvalidScheduleError(where, "'from' and 'until' are equal")
            windows.append(Window(frozenset(DAYS.index(d.lower()) for d in days), start, end))
        return cls(tuple(windows))


def local_time(at: float, tz: Any) -> datetime:
    """``at`` (epoch seconds) in the zone ``tz`` (a ``tzinfo``)."""
    return datetime.fromtimestamp(at, tz)


__all__ = ("DAYS", "Schedule", "Window", "local_time")
