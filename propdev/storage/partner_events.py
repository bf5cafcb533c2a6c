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
    command_ref: str | None = None,
    vendor_command_id: str | None = None,
    result: str | None = None,
    error: str | None = None,
) -> bool:
    """Record ``(partner_id, event_id)`` in the caller's transaction; False if it was seen. A
    ``command_result`` keeps our request id, the vendor's ticket and its result too."""
    rows = await run(
        conn,
        "INSERT INTO partner_events (partner_id, event_id, device_id, type, received_at, "
        "command_ref, vendor_command_id, result, error) "
        "VALUES (:p, :e, :d, :t, :at, :ref, :vc, :res, :err) "
        "ON CONFLICT (partner_id, event_id) DO NOTHING RETURNING event_id",
        p=partner_id,
        e=event_id,
        d=device_id,
        t=type,
        at=at,
        ref=command_ref,
        vc=vendor_command_id,
        res=result,
        err=error,
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
