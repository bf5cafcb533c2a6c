"""The push outbox: a row per (event, device) written in the event's own transaction.

``sync_enqueue`` runs inside the unit that appends a resident's event, so a push exists if and
only if its event does. Rows are born *held* (due ``HOLD`` seconds later): the node that
publishes the event then knows whether a live socket took it and either ``withhold``s the rows
(deleted) or ``release``s them (due now). A node that dies in between leaves them held: they
fall due and another node sends them (a push rather than none).

Senders ``claim`` due rows with a lease (``claimed_by``, ``claimed_until``): on PostgreSQL with
``FOR UPDATE SKIP LOCKED`` so that nodes never take the same rows, on SQLite through its single
writer. A sender that dies mid-send leaves its rows to whoever claims them once the lease ends;
every delivery of one event carries the same collapse id, so a duplicate replaces the first.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from propdev.push.tokens import sync_forget

if TYPE_CHECKING:
    from propdev.storage import Database, UnitConnection

PUSHED = frozenset({"access.automatic", "pass.used", "access.failed"})
"""Event types pushed to the resident's phones (when no live socket took them)."""

HOLD = 5.0  # seconds a row waits for the publishing node's socket check
LEASE = 30.0  # seconds a claim is a sender's before another node may take the row

_CANDIDATES = (
    "SELECT id FROM push_outbox WHERE due_at <= :now "
    "AND (claimed_until IS NULL OR claimed_until < :now) ORDER BY due_at, id LIMIT :k"
)


@dataclass(frozen=True, slots=True)
class Delivery:
    """One claimed row, with its device and the account's language."""

    id: int
    event_id: int
    token_id: str
    user_id: str
    platform: str
    token: str
    event: dict[str, Any]
    attempts: int
    locale: str | None


def sync_enqueue(
    conn: UnitConnection, event: Mapping[str, Any], *, user_id: str, now: float
) -> int:
    """One held row per device of ``user_id`` for a pushed event type; how many."""
    if event.get("type") not in PUSHED:
        return 0
    rows = conn.run(
        "INSERT INTO push_outbox (event_id, token_id, user_id, event, created_at, due_at) "
        "SELECT :e, id, user_id, :ev, :now, :due FROM push_tokens WHERE user_id = :u "
        "RETURNING id",
        e=int(event["id"]),
        ev=json.dumps(dict(event), separators=(",", ":")),
        now=now,
        due=now + HOLD,
        u=user_id,
    )
    return len(rows)


class Outbox:
    """The rows of one database, as one node's sender sees them."""

    def __init__(
        self,
        db: Database,
        *,
        node_id: str,
        clock: Callable[[], float] = time.time,
        lease: float = LEASE,
    ) -> None:
        self.db = db
        self.node_id = node_id
        self.clock = clock
        self.lease = lease

    async def release(self, event_id: int) -> int:
        """No live socket took the event: its held rows are due now."""
        return await self.db.execute(
            "UPDATE push_outbox SET due_at = :now WHERE event_id = :e AND claimed_by IS NULL "
            "AND due_at > :now",
            now=self.clock(),
            e=event_id,
        )

    async def withhold(self, event_id: int) -> int:
        """A live socket took the event: its unclaimed rows are not sent."""
        return await self.db.execute(
            "DELETE FROM push_outbox WHERE event_id = :e AND claimed_by IS NULL", e=event_id
        )

    async def claim(self, limit: int = 50) -> list[Delivery]:
        """Take up to ``limit`` due rows whose lease (if any) has ended, for ``lease`` seconds."""
        now = self.clock()
        until = now + self.lease
        lock = " FOR UPDATE SKIP LOCKED" if self.db.dialect == "postgresql" else ""

        def take(conn: UnitConnection) -> list[Delivery]:
            claimed = conn.run(
                "UPDATE push_outbox SET claimed_by = :n, claimed_until = :until "
                f"WHERE id IN ({_CANDIDATES}{lock}) RETURNING id",
                n=self.node_id,
                until=until,
                now=now,
                k=limit,
            )
            if not claimed:
                return []
            ids = {int(r["id"]) for r in claimed}
            rows = conn.run(
                "SELECT o.id, o.event_id, o.token_id, o.user_id, o.event, o.attempts, "
                "t.platform, t.token, u.locale FROM push_outbox o "
                "JOIN push_tokens t ON t.id = o.token_id LEFT JOIN users u ON u.id = o.user_id "
                "WHERE o.claimed_by = :n AND o.claimed_until = :until",
                n=self.node_id,
                until=until,
            )
            found = {int(r["id"]) for r in rows}
            for orphan in ids - found:  # its token was forgotten meanwhile
                conn.run("DELETE FROM push_outbox WHERE id = :i", i=orphan)
            return [
                Delivery(
                    int(r["id"]),
                    int(r["event_id"]),
                    str(r["token_id"]),
                    str(r["user_id"]),
                    str(r["platform"]),
                    str(r["token"]),
                    json.loads(r["event"]),
                    int(r["attempts"]),
                    r["locale"],
                )
                for r in sorted(rows, key=lambda r: int(r["id"]))
                if int(r["id"]) in ids
            ]

        return await self.db.unit(take)

    async def done(self, delivery: Delivery) -> None:
        """Delivered, or not to be sent again: the row goes."""
        await self.db.execute(
            "DELETE FROM push_outbox WHERE id = :i AND claimed_by = :n",
            i=delivery.id,
            n=self.node_id,
        )

    async def gone(self, delivery: Delivery) -> int:
        """The provider says the token is dead: forget it and every row for it."""
        return await self.db.unit(lambda conn: sync_forget(conn, "id = :v", delivery.token_id))

    async def retry(self, delivery: Delivery, delay: float, error: str, *, count: bool) -> None:
        """Due again in ``delay`` seconds, unclaimed; ``count``: an attempt was spent."""
        await self.db.execute(
            "UPDATE push_outbox SET due_at = :due, claimed_by = NULL, claimed_until = NULL, "
            "attempts = attempts + :c, last_error = :err WHERE id = :i AND claimed_by = :n",
            due=self.clock() + delay,
            c=1 if count else 0,
            err=error[:200],
            i=delivery.id,
            n=self.node_id,
        )

    async def pending(self) -> int:
        row = await self.db.fetch_one("SELECT COUNT(*) AS n FROM push_outbox")
        return int(row["n"]) if row is not None else 0


__all__ = ("HOLD", "LEASE", "PUSHED", "Delivery", "Outbox", "sync_enqueue")
