"""Pushes to staff: a device gone offline, to the staff who opted in and whose scope covers it.

A staff member registers devices as residents do (``PushTokens``; ``/admin/api/v1/me/push-tokens``)
and opts in (``PushPreferences``, ``device_offline``). When a vendor reports a device offline
(``device_offline``, a state report the device actor applies), ``enqueue_offline`` writes, in
the report's own transaction, one outbox row per device of every staff member who:

- opted in, and is active staff (a staff role; not disabled);
- reaches the device's site (``propdev.staff.Scope.reaches``: organisation-wide, or the site
  among theirs).

The rows are due at once (no socket to wait for: the console is not the phone), carry no
resident event (``NO_EVENT``: the resident event ids the notifier releases and withholds start
at 1) and one collapse id per vendor event (``offline_collapse_id``), so that a row sent twice
(a sender that died mid-send) replaces rather than repeats.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from propdev.staff import Place, Scope, decode_sites, staff_roles
from propdev.storage import run

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

    from propdev.storage import Database

DEVICE_OFFLINE = "device.offline"
"""The type of a device-offline push (``propdev.push.render`` has its texts)."""

NO_EVENT = 0
"""``push_outbox.event_id`` of a row with no resident event behind it."""

_OPTED_IN = (
    "SELECT t.user_id, u.roles, s.site_ids FROM push_tokens t"
    " JOIN push_preferences p ON p.user_id = t.user_id"
    " JOIN users u ON u.id = t.user_id LEFT JOIN staff s ON s.user_id = t.user_id"
    " WHERE p.device_offline = TRUE AND s.disabled_at IS NULL"
)


def offline_collapse_id(partner_id: str, event_id: str) -> str:
    """The same for every delivery of one vendor event; 26 base64url characters (Web Push
    ``Topic`` takes 32, ``apns-collapse-id`` 64 bytes)."""
    digest = hashlib.sha256(f"{partner_id}\x00{event_id}".encode()).digest()
    return "off" + base64.urlsafe_b64encode(digest).decode()[:23]


async def enqueue_offline(
    conn: AsyncConnection,
    *,
    access_point_id: str,
    partner_id: str,
    event_id: str,
    occurred_at: float,
    now: float,
) -> int:
    """In the caller's transaction (the report's): one due row per device of every opted-in
    staff member whose scope reaches the access point's site; how many."""
    found = await run(
        conn,
        "SELECT ap.name, ap.site_id, s.name AS site_name FROM access_points ap"
        " LEFT JOIN sites s ON s.id = ap.site_id WHERE ap.id = :id",
        id=access_point_id,
    )
    if not found:
        return 0
    point = found[0]
    place = Place.at([str(point["site_id"])])
    scopes = [_scope(r) for r in await run(conn, _OPTED_IN)]
    recipients = sorted({s.user_id for s in scopes if s.roles and s.reaches(place)})
    if not recipients:
        return 0
    event: dict[str, Any] = {
        "type": DEVICE_OFFLINE,
        "access_point_id": access_point_id,
        "access_point": point["name"],
        "site_id": point["site_id"],
        "site": point["site_name"] or point["site_id"],
        "occurred_at": occurred_at,
        "collapse_id": offline_collapse_id(partner_id, event_id),
    }
    written = 0
    for user_id in recipients:
        rows = await run(
            conn,
            "INSERT INTO push_outbox (event_id, token_id, user_id, event, created_at, due_at) "
            "SELECT :e, id, user_id, :ev, :now, :now FROM push_tokens WHERE user_id = :u "
            "RETURNING id",
            e=NO_EVENT,
            ev=json.dumps(event, separators=(",", ":")),
            now=now,
            u=user_id,
        )
        written += len(rows)
    return written


def _scope(row: Any) -> Scope:
    roles = staff_roles(str(row["roles"]).split(","))
    return Scope(str(row["user_id"]), roles, decode_sites(row["site_ids"]))


class PushPreferences:
    """What each account chose to be pushed beyond its own events (staff: devices offline)."""

    def __init__(self, db: Database, *, clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self.clock = clock

    async def of(self, user_id: str) -> dict[str, bool]:
        row = await self.db.fetch_one(
            "SELECT device_offline FROM push_preferences WHERE user_id = :u", u=user_id
        )
        return {"device_offline": bool(row["device_offline"]) if row is not None else False}

    async def set(self, user_id: str, *, device_offline: bool) -> dict[str, bool]:
        """Opt ``user_id`` in or out of device-offline pushes; the preferences after."""
        await self.db.execute(
            "INSERT INTO push_preferences (user_id, device_offline, updated_at) "
            "VALUES (:u, :d, :t) ON CONFLICT (user_id) DO UPDATE "
            "SET device_offline = :d, updated_at = :t",
            u=user_id,
            d=device_offline,
            t=self.clock(),
        )
        return {"device_offline": device_offline}


__all__ = (
    "DEVICE_OFFLINE",
    "NO_EVENT",
    "PushPreferences",
    "enqueue_offline",
    "offline_collapse_id",
)
