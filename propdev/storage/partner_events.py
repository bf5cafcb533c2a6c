"""Partner event ids already applied: a replayed callback is recognised and changes nothing."""

from __future__ import annotations

from typing import TYPE_CHECKING

from propdev.storage.db import run

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection


async def remember(
    conn: AsyncConnection,
    *,
    partner_id: str,
    event_id: str,
    device_id: str,
    type: str,
    at: float,
) -> bool:
    """Record ``(partner_id, event_id)`` in the caller's transaction; False if it was seen."""
    rows = await run(
        conn,
        "INSERT INTO partner_events (partner_id, event_id, device_id, type, received_at) "
        "VALUES (:p, :e, :d, :t, :at) ON CONFLICT (partner_id, event_id) DO NOTHING "
        "RETURNING event_id",
        p=partner_id,
        e=event_id,
        d=device_id,
        t=type,
        at=at,
    )
    return bool(rows)


async def seen(conn: AsyncConnection, *, partner_id: str, event_id: str) -> bool:
    """True when ``(partner_id, event_id)`` was recorded before."""
    rows = await run(
        conn,
        "SELECT 1 AS one FROM partner_events WHERE partner_id = :p AND event_id = :e",
        p=partner_id,
        e=event_id,
    )
    return bool(rows)
