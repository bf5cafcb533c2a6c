"""Open commands and the idempotency keys that replay their answers."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from propdev.storage.db import Database, Row, UnitConnection, run

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

IDEMPOTENCY_WINDOW = 24 * 3600

_PUT_COMMAND = (
    "INSERT INTO commands (id, access_point_id, user_id, status, reason, created_at, "
    "updated_at, vendor_command_id) VALUES (:id, :ap, :u, :s, :r, :t, :t, :v) "
    "ON CONFLICT (id) DO UPDATE SET status = :s, reason = :r, updated_at = :t, "
    "vendor_command_id = COALESCE(:v, commands.vendor_command_id)"
)
_ADD_STEP = "INSERT INTO command_steps (command_id, step, at, data) VALUES (:c, :s, :t, :d)"
_ADD_STEPS = "INSERT INTO command_steps (command_id, step, at, data) VALUES "
_PUT_ANSWER = (
    "INSERT INTO idempotency (subject, key, status, body, created_at) "
    "VALUES (:s, :k, :st, :b, :t) ON CONFLICT (subject, key) DO UPDATE "
    "SET status = :st, body = :b, created_at = :t"
)


async def add_steps(
    conn: AsyncConnection, command_id: str, steps: Sequence[tuple[str, float, dict[str, Any]]]
) -> None:
    """Append lifecycle steps ``(step, at, data)`` of a command, in the caller's transaction."""
    for step, at, data in steps:
        await run(conn, _ADD_STEP, c=command_id, s=step, t=at, d=json.dumps(data))


async def set_status(conn: AsyncConnection, command_id: str, status: str, at: float) -> None:
    await run(
        conn,
        "UPDATE commands SET status = :s, updated_at = :t WHERE id = :id",
        s=status,
        t=at,
        id=command_id,
    )


async def passage_candidate(
    conn: AsyncConnection,
    *,
    access_point_id: str,
    command_id: str | None,
    vendor_command_id: str | None,
    since: float,
) -> Row | None:
    """The command of ``access_point_id`` a passage follows: ours by id, the vendor's by its id,
    else the latest confirmed one not older than ``since``."""
    columns = "SELECT id, user_id, status FROM commands WHERE access_point_id = :ap"
    if command_id:
        rows = await run(conn, f"{columns} AND id = :id", ap=access_point_id, id=command_id)
        if rows:
            return rows[0]
    if vendor_command_id:
        rows = await run(
            conn, f"{columns} AND vendor_command_id = :v", ap=access_point_id, v=vendor_command_id
        )
        if rows:
            return rows[0]
    rows = await run(
        conn,
        f"{columns} AND status = 'confirmed' AND updated_at >= :since "
        "ORDER BY updated_at DESC LIMIT 1",
        ap=access_point_id,
        since=since,
    )
    return rows[0] if rows else None


# -- the same writes inside a ``Database.unit`` (one hop for the whole transaction) ----------


def sync_put_command(
    conn: UnitConnection,
    *,
    command_id: str,
    access_point_id: str,
    user_id: str,
    status: str,
    reason: str = "",
    at: float,
    vendor_command_id: str | None = None,
) -> None:
    conn.run(
        _PUT_COMMAND,
        id=command_id,
        ap=access_point_id,
        u=user_id,
        s=status,
        r=reason,
        t=at,
        v=vendor_command_id,
    )


def sync_add_steps(
    conn: UnitConnection, command_id: str, steps: Sequence[tuple[str, float, dict[str, Any]]]
) -> None:
    """Insert ``steps`` in one statement (one round trip on PostgreSQL, not one per step),
    in their order: the rows of a multi-row ``VALUES`` take their ids in the order listed."""
    if not steps:
        return
    params: dict[str, Any] = {"c": command_id}
    rows = []
    for n, (step, at, data) in enumerate(steps):
        rows.append(f"(:c, :s{n}, :t{n}, :d{n})")
        params.update({f"s{n}": step, f"t{n}": at, f"d{n}": json.dumps(data)})
    conn.run(_ADD_STEPS + ", ".join(rows), **params)


def sync_put_answer(
    conn: UnitConnection, *, subject: str, key: str, status: int, body: dict[str, Any], at: float
) -> None:
    conn.run(_PUT_ANSWER, s=subject, k=key, st=status, b=json.dumps(body), t=at)


class Commands:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def get(self, command_id: str) -> Row | None:
        return await self.db.fetch_one(
            "SELECT id, access_point_id, user_id, status, reason, created_at, updated_at, "
            "vendor_command_id FROM commands WHERE id = :id",
            id=command_id,
        )

    async def steps(self, command_id: str) -> list[dict[str, Any]]:
        """The command's lifecycle, oldest first: ``{"step", "at", ...data}``."""
        rows = await self.db.fetch_all(
            "SELECT step, at, data FROM command_steps WHERE command_id = :c ORDER BY id",
            c=command_id,
        )
        return [{**json.loads(r["data"]), "step": r["step"], "at": r["at"]} for r in rows]

    async def answer(
        self, subject: str, key: str, *, now: float | None = None
    ) -> tuple[int, dict[str, Any]] | None:
        """The stored answer for ``key`` if it is younger than the idempotency window."""
        row = await self.db.fetch_one(
            "SELECT status, body FROM idempotency WHERE subject = :s AND key = :k "
            "AND created_at > :t",
            s=subject,
            k=key,
            t=(time.time() if now is None else now) - IDEMPOTENCY_WINDOW,
        )
        if row is None:
            return None
        return int(row["status"]), json.loads(row["body"])

    async def forget_expired(self) -> int:
        return await self.db.execute(
            "DELETE FROM idempotency WHERE created_at <= :t", t=time.time() - IDEMPOTENCY_WINDOW
        )
