"""Rights: who may open what, and when (the weekly schedule format of ``propdev.access``)."""

from __future__ import annotations

import json
from collections.abc import Collection
from typing import Any

import propdev.management.fields as fields
from propdev.access import InvalidScheduleError, Schedule
from propdev.management.changes import details, record
from propdev.management.errors import ConflictError, InvalidFieldError, UnknownObjectError
from propdev.management.within import POINTS_AT, in_subquery
from propdev.storage import Database, run


def _json(row: Any) -> dict[str, Any]:
    schedule = row["schedule"]
    return {
        "user_id": row["user_id"],
        "access_point_id": row["access_point_id"],
        "schedule": json.loads(schedule) if schedule else None,
    }


class Rights:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def list(
        self,
        *,
        user_id: str | None = None,
        access_point_id: str | None = None,
        sites: Collection[str] | None = None,
    ) -> list[dict[str, Any]]:
        """Rights (at the access points of ``sites`` only, when given)."""
        within, params = in_subquery("access_point_id", POINTS_AT, sites)
        where = [within]
        if user_id:
            where.append("user_id = :u")
            params["u"] = user_id
        if access_point_id:
            where.append("access_point_id = :a")
            params["a"] = access_point_id
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        rows = await self.db.fetch_all(
            f"SELECT user_id, access_point_id, schedule FROM rights{clause} "
            "ORDER BY user_id, access_point_id",
            **params,
        )
        return [_json(r) for r in rows]

    async def grant(
        self, actor: str, user_id: str, access_point_id: str, body: object
    ) -> tuple[dict[str, Any], bool]:
        """Give or replace a right: (the right, whether it is new)."""
        data = fields.body_object(body) if body is not None else {}
        fields.only(data, ("schedule",))
        raw = data.get("schedule")
        try:
            schedule = Schedule.parse(raw) if raw is not None else None
        except InvalidScheduleError as exc:
            raise InvalidFieldError(exc.field, exc.detail) from None
        async with self.db.transaction() as conn:
            user = await run(
                conn,
                "SELECT u.id, r.moved_out_at FROM users u LEFT JOIN residencies r "
                "ON r.user_id = u.id WHERE u.id = :u",
                u=user_id,
            )
            if not user:
                raise UnknownObjectError("user", user_id)
            if user[0]["moved_out_at"] is not None:
                raise ConflictError(f"user {user_id!r} has moved out")
            if not await run(
                conn, "SELECT 1 AS x FROM access_points WHERE id = :a", a=access_point_id
            ):
                raise UnknownObjectError("access point", access_point_id)
            old = await run(
                conn,
                "SELECT 1 AS x FROM rights WHERE user_id = :u AND access_point_id = :a",
                u=user_id,
                a=access_point_id,
            )
            stored = schedule.dumps() if schedule is not None else None
            await run(
                conn,
                "INSERT INTO rights (user_id, access_point_id, schedule) VALUES (:u, :a, :s) "
                "ON CONFLICT (user_id, access_point_id) DO UPDATE SET schedule = :s",
                u=user_id,
                a=access_point_id,
                s=stored,
            )
            await record(
                conn,
                self.db.dialect,
                actor=actor,
                subject=user_id,
                action="right.grant",
                access_point_id=access_point_id,
                reason=details(
                    user_id=user_id,
                    schedule="yes" if schedule else "no",
                    replaced="yes" if old else "no",
                ),
            )
        right = {
            "user_id": user_id,
            "access_point_id": access_point_id,
            "schedule": schedule.to_json() if schedule is not None else None,
        }
        return right, not old

    async def revoke(self, actor: str, user_id: str, access_point_id: str) -> None:
        async with self.db.transaction() as conn:
            gone = await run(
                conn,
                "DELETE FROM rights WHERE user_id = :u AND access_point_id = :a RETURNING user_id",
                u=user_id,
                a=access_point_id,
            )
            if not gone:
                raise UnknownObjectError("right", f"{user_id}/{access_point_id}")
            await record(
                conn,
                self.db.dialect,
                actor=actor,
                subject=user_id,
                action="right.revoke",
                access_point_id=access_point_id,
                reason=details(user_id=user_id),
            )
