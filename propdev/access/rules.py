"""Our rules: may user U open access point A at time T?

A right is a row of ``rights`` with an optional schedule (``propdev.access.schedule``) read in
the time zone of the access point's site. Every check reads the store, so a right granted or
withdrawn on one node applies on all of them at once.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import structlog

from propdev.access.schedule import Schedule, local_time
from propdev.storage import Database, Row

log = structlog.get_logger()

Clock = Callable[[], float]

NO_RIGHT = "no_right"
OUTSIDE_SCHEDULE = "outside_schedule"


@dataclass(frozen=True, slots=True)
class Decision:
    """The answer of our rules; ``reason`` says why not (empty when allowed)."""

    allowed: bool
    reason: str = ""

    def __bool__(self) -> bool:
        return self.allowed


@functools.lru_cache(maxsize=64)
def site_zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        log.warning("unknown_site_timezone", timezone=name)
        return ZoneInfo("UTC")


class AccessRules:
    """Rights with optional schedules, decided against an injectable clock."""

    def __init__(self, db: Database, *, clock: Clock = time.time) -> None:
        self.db = db
        self.clock = clock

    async def decide(
        self, user_id: str, access_point_id: str, *, at: float | None = None
    ) -> Decision:
        # Read on every check (no cache to go stale), by primary keys: a lookup, on the loop
        # without a thread hop.
        row = await self.db.lookup(
            "SELECT r.schedule AS schedule, s.timezone AS timezone FROM rights r "
            "JOIN access_points a ON a.id = r.access_point_id "
            "JOIN sites s ON s.id = a.site_id "
            "WHERE r.user_id = :u AND r.access_point_id = :a",
            u=user_id,
            a=access_point_id,
        )
        return self._judge(row, at)

    def _judge(self, right: Row | None, at: float | None) -> Decision:
        """A right's row (``schedule``, ``timezone``) or None, against the clock."""
        if right is None:
            return Decision(False, NO_RIGHT)
        if right["schedule"] is None:
            return Decision(True)
        schedule = Schedule.parse(right["schedule"])
        moment = local_time(self.clock() if at is None else at, site_zone(right["timezone"]))
        if schedule.allows(moment):
            return Decision(True)
        return Decision(False, OUTSIDE_SCHEDULE)

    async def without_right(self, user_id: str, access_point_ids: Iterable[str]) -> list[str]:
        """Those of ``access_point_ids`` the user holds no right to (schedules aside)."""
        wanted = list(dict.fromkeys(access_point_ids))
        rows = await self.db.fetch_all(
            "SELECT access_point_id FROM rights WHERE user_id = :u", u=user_id
        )
        held = {r["access_point_id"] for r in rows}
        return [a for a in wanted if a not in held]

    async def schedule_of(self, user_id: str, access_point_id: str) -> Schedule | None:
        row = await self.db.fetch_one(
            "SELECT schedule FROM rights WHERE user_id = :u AND access_point_id = :a",
            u=user_id,
            a=access_point_id,
        )
        return Schedule.parse(row["schedule"]) if row and row["schedule"] else None

    async def grant(
        self, user_id: str, access_point_id: str, schedule: Schedule | None = None
    ) -> None:
        """Give (or replace) a right; ``schedule=None`` means at all times."""
        await self.db.execute(
            "INSERT INTO rights (user_id, access_point_id, schedule) VALUES (:u, :a, :s) "
            "ON CONFLICT (user_id, access_point_id) DO UPDATE SET schedule = :s",
            u=user_id,
            a=access_point_id,
            s=schedule.dumps() if schedule is not None else None,
        )

    async def withdraw(self, user_id: str, access_point_id: str) -> bool:
        removed = await self.db.execute(
            "DELETE FROM rights WHERE user_id = :u AND access_point_id = :a",
            u=user_id,
            a=access_point_id,
        )
        return removed > 0
