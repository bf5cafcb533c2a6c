"""Which chain an entry goes to, and appends on different chains never waiting for each other
on PostgreSQL while appends on one chain still do."""

from __future__ import annotations

import asyncio
from dataclasses import replace

from propdev.registry import SHARDS, shard_of
from propdev.storage import Database
from propdev.storage.audit import CHAINS, GENESIS, AuditLog, AuditRecord, append, chain_of
from tests.support.eventually import eventually
from tests.support.postgres import fresh_database


def entry(door: str | None, subject: str | None = None, actor: str = "user:u1") -> AuditRecord:
    return AuditRecord(1000.0, actor, "open", door, "granted", subject=subject)


def doors_on_two_chains() -> tuple[str, str]:
    first = "ap-a"
    second = next(f"ap-{n}" for n in range(100) if shard_of(f"ap-{n}") != shard_of(first))
    return first, second


def test_there_is_a_chain_per_shard() -> None:
    assert CHAINS == SHARDS


def test_a_doors_entries_go_to_the_chain_of_the_doors_shard() -> None:
    for n in range(200):
        door = f"ap-{n}"
        assert chain_of(entry(door, subject="u1")) == shard_of(door, SHARDS)
    assert len({chain_of(entry(f"ap-{n}")) for n in range(200)}) > 32  # spread, not one chain


def test_an_entry_without_a_door_goes_by_its_subject_else_by_its_actor() -> None:
    assert chain_of(entry(None, subject="u42", actor="user:admin")) == shard_of("u42")
    assert chain_of(entry(None, actor="user:admin")) == shard_of("user:admin")
    # The same person's entries without a door share one chain, whoever acted.
    assert chain_of(entry(None, "u42", "user:a")) == chain_of(entry(None, "u42", "user:b"))


async def test_append_puts_an_entry_on_its_chain_whatever_the_record_says(db: Database) -> None:
    stored = await AuditLog(db).append(replace(entry("ap-1"), chain=63))
    assert stored["chain"] == chain_of(entry("ap-1")) != 63
    row = await db.fetch_one("SELECT chain FROM audit WHERE id = :id", id=stored["id"])
    assert row == {"chain": stored["chain"]}


async def test_each_chain_links_to_its_own_last_entry(db: Database) -> None:
    log = AuditLog(db)
    a, b = doors_on_two_chains()
    a1 = await log.append(entry(a))
    b1 = await log.append(entry(b))
    a2 = await log.append(entry(a))
    b2 = await log.append(entry(b))
    assert (a1["prev_hash"], b1["prev_hash"]) == (GENESIS, GENESIS)
    assert (a2["prev_hash"], b2["prev_hash"]) == (a1["hash"], b1["hash"])
    assert await log.verify() == (True, 4, None)


async def _waiting_for_a_chain_lock(db: Database) -> bool:
    rows = await db.fetch_all(
        "SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND classid = 74202 AND NOT granted"
    )
    return bool(rows)


async def test_on_postgresql_an_open_append_on_one_chain_does_not_hold_up_another_chain() -> None:
    a, b = doors_on_two_chains()
    with fresh_database() as url:
        db = Database(url)
        try:
            from propdev.storage import migrate

            await migrate(db)
            log = AuditLog(db)
            async with db.transaction() as conn:
                held = await append(conn, "postgresql", entry(a))  # chain a locked, uncommitted
                # Another chain commits while chain a's transaction is still open (a bound for
                # a hang, not a measurement: were it blocked, it would wait for ever).
                other = await asyncio.wait_for(log.append(entry(b)), timeout=60)
                committed = await db.fetch_one(
                    "SELECT id FROM audit WHERE id = :id", id=other["id"]
                )
                assert committed == {"id": other["id"]}
                # The same chain does wait: its append asks for the lock and is not granted it.
                same = asyncio.create_task(log.append(entry(a)))
                await eventually(
                    lambda: _waiting_for_a_chain_lock(db),
                    within=30,
                    what="an append on the held chain waiting for its lock",
                )
                assert not same.done()
            after = await same  # chain a's transaction committed: it goes on, after it
            assert after["prev_hash"] == held["hash"]
            assert await log.verify() == (True, 3, None)
        finally:
            await db.close()
