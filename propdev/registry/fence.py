"""Fencing tokens in the store: a shard's epoch, advanced on every acquisition.

A node that acquires a shard's lease advances the shard's epoch in the store before it acts;
every commit for a device checks, in the same transaction, that the epoch it holds is still
the store's (the row is share-locked, so an acquisition waits for commits in flight and every
later commit of the old owner is refused). A paused or partitioned node whose lease ran out
can therefore never commit for the shard again, whatever it believes. Epochs live in the
store, not in Redis, so they keep growing across a Redis restart.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import TYPE_CHECKING

from propdev.registry.errors import FencedError
from propdev.storage import Database, UnitConnection, run

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection


class Fence:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._lock = "" if db.dialect == "sqlite" else " FOR SHARE"

    async def advance(self, shards: Iterable[int], node_id: str) -> dict[int, int]:
        """Take the next epoch of each shard for ``node_id``; the new epochs."""
        epochs: dict[int, int] = {}
        now = time.time()
        async with self.db.transaction() as conn:
            for shard in sorted(shards):  # one order for everyone: no deadlocks
                rows = await run(
                    conn,
                    "INSERT INTO shard_fence (shard, epoch, owner, updated_at) "
                    "VALUES (:s, 1, :n, :t) ON CONFLICT (shard) DO UPDATE SET "
                    "epoch = shard_fence.epoch + 1, owner = :n, updated_at = :t RETURNING epoch",
                    s=shard,
                    n=node_id,
                    t=now,
                )
                epochs[shard] = int(rows[0]["epoch"])
        return epochs

    async def check(self, conn: AsyncConnection, shard: int, epoch: int) -> None:
        """Raise ``FencedError`` unless ``epoch`` is the shard's current one (in ``conn``)."""
        rows = await run(
            conn, "SELECT epoch FROM shard_fence WHERE shard = :s" + self._lock, s=shard
        )
        current = int(rows[0]["epoch"]) if rows else None
        if current != epoch:
            raise FencedError(f"shard {shard}: epoch {epoch} is stale (store has {current})")

    def check_in(self, conn: UnitConnection, shard: int, epoch: int) -> None:
        """``check`` inside a ``Database.unit``."""
        rows = conn.run("SELECT epoch FROM shard_fence WHERE shard = :s" + self._lock, s=shard)
        current = int(rows[0]["epoch"]) if rows else None
        if current != epoch:
            raise FencedError(f"shard {shard}: epoch {epoch} is stale (store has {current})")

    async def epochs(self) -> dict[int, tuple[int, str]]:
        rows = await self.db.fetch_all("SELECT shard, epoch, owner FROM shard_fence")
        return {int(r["shard"]): (int(r["epoch"]), str(r["owner"])) for r in rows}
