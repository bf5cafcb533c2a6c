from __future__ import annotations

import asyncio

from propdev.storage import Database
from propdev.storage.audit import GENESIS, AuditLog, AuditRecord


def record(n: int, decision: str = "granted") -> AuditRecord:
    return AuditRecord(
        at=1000.0 + n,
        actor=f"user:u{n}",
        action="open",
        access_point_id="ap-1",
        decision=decision,
        reason="" if decision == "granted" else "no_right",
        command_id=f"c{n}",
    )


async def test_entries_chain_each_hash_to_the_previous(db: Database) -> None:
    log = AuditLog(db)
    first = await log.append(record(1))
    second = await log.append(record(2, "denied"))
    assert first["prev_hash"] == GENESIS
    assert second["prev_hash"] == first["hash"]
    assert await log.verify() == (True, 2, None)


async def test_editing_one_entry_breaks_the_chain_at_that_entry(db: Database) -> None:
    log = AuditLog(db)
    entries = [await log.append(record(n)) for n in range(5)]
    await db.execute("UPDATE audit SET decision = 'denied' WHERE id = :id", id=entries[2]["id"])
    ok, checked, bad = await log.verify()
    assert (ok, checked, bad) == (False, 2, entries[2]["id"])


async def test_deleting_an_entry_breaks_the_chain(db: Database) -> None:
    log = AuditLog(db)
    entries = [await log.append(record(n)) for n in range(4)]
    await db.execute("DELETE FROM audit WHERE id = :id", id=entries[1]["id"])
    ok, _, bad = await log.verify()
    assert not ok and bad == entries[2]["id"]


async def test_concurrent_appends_keep_one_chain(db: Database) -> None:
    log = AuditLog(db)
    await asyncio.gather(*(log.append(record(n)) for n in range(20)))
    assert await log.verify() == (True, 20, None)


async def test_pages_filter_by_access_point_in_append_order(db: Database) -> None:
    log = AuditLog(db)
    for n in range(3):
        await log.append(record(n))
    await log.append(
        AuditRecord(
            at=5.0, actor="user:x", action="open", access_point_id="ap-2", decision="granted"
        )
    )
    page = await log.page(access_point_id="ap-1", limit=2)
    assert [e["command_id"] for e in page] == ["c0", "c1"]
    rest = await log.page(access_point_id="ap-1", after=page[-1]["id"])
    assert [e["command_id"] for e in rest] == ["c2"]
