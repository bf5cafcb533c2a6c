"""Every management change is an entry of the hash-chained audit log, written in the
transaction that makes the change.

``actor`` is ``operator:<user id>``; ``action`` names the change (``site.create``,
``access_point.delete``, ``resident.move_out``, ``right.grant``...); ``reason`` carries ids and
counts as ``key=value`` pairs, never names, phones, plates or secrets.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from propdev.storage import audit
from propdev.storage.audit import AuditRecord

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

    from propdev.storage import Database

MAX_REASON = 1000


def operator(user_id: str) -> str:
    """The audit actor of an operator."""
    return f"operator:{user_id}"


def details(**values: object) -> str:
    """``key=value`` pairs (in the given order) of the ids and counts of a change."""
    out = " ".join(f"{k}={'' if v is None else v}" for k, v in values.items())
    return out[:MAX_REASON]


async def record(
    conn: AsyncConnection,
    dialect: str,
    *,
    actor: str,
    action: str,
    reason: str,
    access_point_id: str | None = None,
    at: float | None = None,
    subject: str | None = None,
    decision: str = "granted",
) -> dict[str, Any]:
    """Append the change to the audit chain inside the caller's transaction; ``subject`` is
    the person it concerns (a resident's user id), if any."""
    return await audit.append(
        conn,
        dialect,
        AuditRecord(
            at=time.time() if at is None else at,
            actor=actor,
            action=action,
            access_point_id=access_point_id,
            decision=decision,
            reason=reason,
            subject=subject,
        ),
    )


async def refused(
    db: Database, *, actor: str, action: str, reason: str, subject: str | None = None
) -> None:
    """Append the ``denied`` entry of a change our rules refused (``reason`` its code, then
    ids), in a transaction of its own: there is no change to share one with. Written before
    the refusal is answered."""
    async with db.transaction() as conn:
        await record(
            conn,
            db.dialect,
            actor=actor,
            action=action,
            reason=reason,
            subject=subject,
            decision="denied",
        )
