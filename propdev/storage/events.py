"""Residents' events: what happened at their access points, readable after the fact."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, NotRequired, TypedDict, Unpack

from propdev.storage.db import Database, UnitConnection, run

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

_INSERT = (
    "INSERT INTO events (user_id, type, access_point_id, command_id, occurred_at, data) "
    "VALUES (:u, :t, :ap, :cmd, :at, :data) RETURNING id"
)


class EventFields(TypedDict):
    """The fields of one event as it is appended (``data``: extra keys the API shows)."""

    user_id: str
    type: str
    access_point_id: str | None
    command_id: str | None
    occurred_at: float
    data: NotRequired[dict[str, Any] | None]


async def append(conn: AsyncConnection, **event: Unpack[EventFields]) -> dict[str, Any]:
    """Append one event inside the caller's transaction; return it as the API shows it."""
    rows = await run(conn, _INSERT, **_params(event))
    return _shown(rows[0]["id"], event)


def sync_append(conn: UnitConnection, **event: Unpack[EventFields]) -> dict[str, Any]:
    """``append`` inside a ``Database.unit``."""
    rows = conn.run(_INSERT, **_params(event))
    return _shown(rows[0]["id"], event)


def _params(event: EventFields) -> dict[str, Any]:
    return {
        "u": event["user_id"],
        "t": event["type"],
        "ap": event["access_point_id"],
        "cmd": event["command_id"],
        "at": event["occurred_at"],
        "data": json.dumps(event.get("data") or {}),
    }


def _shown(event_id: int, event: EventFields) -> dict[str, Any]:
    return render(
        {
            "id": event_id,
            "type": event["type"],
            "access_point_id": event["access_point_id"],
            "command_id": event["command_id"],
            "occurred_at": event["occurred_at"],
            "data": event.get("data") or {},
        }
    )


def render(row: Mapping[str, Any]) -> dict[str, Any]:
    data = row.get("data") or {}
    if isinstance(data, str):
        data = json.loads(data)
    out = {
        "id": int(row["id"]),
        "type": row["type"],
        "access_point_id": row["access_point_id"],
        "command_id": row["command_id"],
        "occurred_at": row["occurred_at"],
    }
    out.update({k: v for k, v in data.items() if k not in out})
    return out


class EventStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def page(self, user_id: str, *, after: int = 0, limit: int = 100) -> list[dict[str, Any]]:
        rows = await self.db.fetch_all(
            "SELECT id, type, access_point_id, command_id, occurred_at, data FROM events "
            "WHERE user_id = :u AND id > :after ORDER BY id LIMIT :limit",
            u=user_id,
            after=after,
            limit=limit,
        )
        return [render(r) for r in rows]
