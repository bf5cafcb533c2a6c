"""Erasures made elsewhere, applied again to this store: after ``backup restore``.

A backup taken before an erasure brings the person back when it is restored. The erasures
made since are listed by a store that lived on (``privacy erasures export``) or by the audit
stream (``propdev.privacy.erasure_list``); ``reapply`` applies each one this store has not:

* a resident held here is erased by the API's own code path (``propdev.privacy.erasure``):
  the same blanking and deletions, the ``erasures`` row with the original time and operator,
  and a ``resident.erase`` entry by ``actor`` whose reason begins ``reapplied erased_at=…``;
* an id already in ``erasures`` is skipped, and reported: not an error (a second run changes
  nothing);
* an id this store never held (the account was made after the backup) gets its ``erasures``
  row and a ``resident.erase`` entry saying ``held=nothing``, so that the next export of this
  store lists it too.

Everything is checked before anything is changed: an erasure list of another cluster, or one
naming an account that is here and is not a resident's (staff are never erased), is
``ErasureListError`` with nothing changed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from propdev.privacy.erasure import Cut, erase, erase_entry, reapplied_reason
from propdev.privacy.erasure_list import Erasure, ErasureList, document
from propdev.privacy.errors import AlreadyErasedError, ErasureListError
from propdev.privacy.export import RESIDENT_ROLE
from propdev.storage import Database, run
from propdev.storage import audit as audit_log
from propdev.storage.identity import cluster_id

ACTOR = "cli:erasures"


async def no_cut(_user_id: str, _at: float) -> None:
    """Nothing to cut off: no node serves yet; one that starts reads the move-out back."""


@dataclass(frozen=True, slots=True)
class ReapplyReport:
    source: str
    applied: tuple[str, ...]  # held here, erased now
    skipped: tuple[str, ...]  # erased here already
    absent: tuple[str, ...]  # never held here: the erasure recorded

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "listed": len(self.applied) + len(self.skipped) + len(self.absent),
            "applied": list(self.applied),
            "skipped_already_erased": list(self.skipped),
            "absent_recorded": list(self.absent),
        }


async def _plan(db: Database, erasures: tuple[Erasure, ...]) -> list[tuple[Erasure, str]]:
    """Each erasure with what to do: ``skip``, ``erase`` or ``record``; refuse the list
    (``ErasureListError``) if it names an account here that is not a resident's."""
    plan = []
    for erasure in erasures:
        if await db.fetch_one("SELECT 1 AS x FROM erasures WHERE user_id = :u", u=erasure.user_id):
            plan.append((erasure, "skip"))
            continue
        user = await db.fetch_one("SELECT roles FROM users WHERE id = :u", u=erasure.user_id)
        if user is None:
            plan.append((erasure, "record"))
        elif RESIDENT_ROLE in str(user["roles"]).split(","):
            plan.append((erasure, "erase"))
        else:
            raise ErasureListError(
                f"the list erases {erasure.user_id!r}, an account here that is not a "
                "resident's: not this cluster's list? nothing was changed"
            )
    return plan


async def _record(db: Database, actor: str, erasure: Erasure, now: float) -> bool:
    """The erasure of an id this store never held: its row and its audit entry."""
    async with db.transaction() as conn:
        taken = await run(
            conn,
            "INSERT INTO erasures (user_id, erased_at, actor) VALUES (:u, :t, :a) "
            "ON CONFLICT (user_id) DO NOTHING RETURNING user_id",
            u=erasure.user_id,
            t=erasure.erased_at,
            a=erasure.actor,
        )
        if not taken:
            return False
        await audit_log.append(
            conn,
            db.dialect,
            erase_entry(now, actor, erasure.user_id, f"{reapplied_reason(erasure)} held=nothing"),
        )
    return True


async def reapply(
    db: Database,
    erasure_list: ErasureList,
    *,
    actor: str = ACTOR,
    cut: Cut = no_cut,
    clock: Callable[[], float] = time.time,
) -> ReapplyReport:
    """Apply every erasure of ``erasure_list`` this (migrated) store has not applied."""
    here = await cluster_id(db)
    if erasure_list.cluster_id is not None and erasure_list.cluster_id != here:
        raise ErasureListError(
            f"the erasure list is of cluster {erasure_list.cluster_id}, this store is cluster "
            f"{here}: nothing was changed"
        )
    applied: list[str] = []
    skipped: list[str] = []
    absent: list[str] = []
    for erasure, action in await _plan(db, erasure_list.erasures):
        user_id = erasure.user_id
        if action == "skip":
            skipped.append(user_id)
        elif action == "record":
            (absent if await _record(db, actor, erasure, clock()) else skipped).append(user_id)
        else:
            try:
                await erase(db, actor, user_id, cut=cut, clock=clock, reapplying=erasure)
            except AlreadyErasedError:  # by someone else since the plan was made
                skipped.append(user_id)
            else:
                applied.append(user_id)
    return ReapplyReport(erasure_list.source, tuple(applied), tuple(skipped), tuple(absent))


async def erasure_list_of(db: Database, *, now: float) -> dict[str, Any]:
    """This store's erasures as the erasure list document (``privacy erasures export``)."""
    rows = await db.fetch_all(
        "SELECT user_id, erased_at, actor FROM erasures ORDER BY erased_at, user_id"
    )
    erasures = [Erasure(str(r["user_id"]), float(r["erased_at"]), str(r["actor"])) for r in rows]
    return document(erasures, cluster_id=await cluster_id(db), exported_at=now)
