"""Open commands and the idempotency keys that replay their answers."""

from __future__ import annotations

import json
import time
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from propdev.storage.db import Database, Row, run

IDEMPOTENCY_WINDOW = 24 * 3600


async def put_command(
    conn: AsyncConnection,
    *,
    command_id: str,
    access_point_id: str,
    user_id: str,
    status: str,
    reason: str = "",
    at: float,
) -> None:
    await run(
        conn,
        "INSERT INTO commands (id, access_point_id, user_id, status, reason, created_at, "
        "updated_at) VALUES (:id, :ap, :u, :s, :r, :t, :t) ON CONFLICT (id) DO UPDATE "
        "SET status = :s, reason = :r, updated_at = :t",
        id=command_id,
        ap=access_point_id,
        u=user_id,
        s=status,
        r=reason,
        t=at,
    )


async def put_answer(
    conn: AsyncConnection, *, subject: str, key: str, status: int, body: dict[str, Any], at: float
) -> None:
    await run(
        conn,
        "INSERT INTO idempotency (subject, key, status, body, created_at) "
        "VALUES (:s, :k, :st, :b, :t) ON CONFLICT (subject, key) DO UPDATE "
        "SET status = :st, body = :b, created_at = :t",
        s=subject,
        k=key,
        st=status,
        b=json.dumps(body),
        t=at,
    )


class Commands:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def get(self, command_id: str) -> Row | None:
        return await self.db.fetch_one(
            "SELECT id, access_point_id, user_id, status, reason, created_at, updated_at "
            "FROM commands WHERE id = :id",
            id=command_id,
        )

    async def answer(self, subject: str, key: str) -> tuple[int, dict[str, Any]] | None:
        """The stored answer for ``key`` if it is younger than the idempotency window."""
        row = await self.db.fetch_one(
            "SELECT status, body FROM idempotency WHERE subject = :s AND key = :k "
            "AND created_at > :t",
            s=subject,
            k=key,
            t=time.time() - IDEMPOTENCY_WINDOW,
        )
        if row is None:
            return None
        return int(row["status"]), json.loads(row["body"])

    async def forget_expired(self) -> int:
        return await self.db.execute(
            "DELETE FROM idempotency WHERE created_at <= :t", t=time.time() - IDEMPOTENCY_WINDOW
        )
