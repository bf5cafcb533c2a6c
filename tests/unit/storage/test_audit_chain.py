"""The audit chain as the opening pipeline writes it (``sync_append`` in a unit), its lock on
PostgreSQL, paging the whole log and verifying a chain longer than one page.

``record`` builds entries already on their chain (``chain_of``), as ``append`` stores them."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import pytest

from propdev.storage import Database
from propdev.storage.audit import (
    GENESIS,
    AuditLog,
    AuditRecord,
    append,
    chain_of,
    entry_hash,
    sync_append,
)
from propdev.storage.db import Row, UnitConnection

LOCK_KEY = 74202  # the advisory lock space of the chains: (74202, chain) everywhere
LOCK = "SELECT pg_advisory_xact_lock(:k, :chain)"  # in a transaction (``audit.append``)
UNIT_LOCK = "SELECT pg_advisory_xact_lock(:k, :s)"  # in a unit (``storage.db.unit_lock``)


def record(n: int, access_point_id: str | None = "ap-1") -> AuditRecord:
    entry = AuditRecord(
        at=2000.0 + n,
        actor=f"user:u{n}",
        action="open",
        access_point_id=access_point_id,
        decision="granted",
        reason="",
        command_id=f"c{n}",
    )
    return replace(entry, chain=chain_of(entry))


class Recording:
    """A unit connection that records each statement and forwards it to the real one, except
    the PostgreSQL advisory lock (SQLite has none)."""

    def __init__(self, inner: UnitConnection, dialect: str) -> None:
        self.inner = inner
        self.dialect = dialect
        self.statements: list[tuple[str, dict[str, Any]]] = []

    def run(self, sql: str, **params: Any) -> list[Row]:
        self.statements.append((sql, params))
        if "pg_advisory_xact_lock" in sql:
            return [{"pg_advisory_xact_lock": None}]
        return self.inner.run(sql, **params)


async def test_an_entry_appended_in_a_unit_chains_to_the_last_entry_and_is_returned_whole(
    db: Database,
) -> None:
    log = AuditLog(db)
    first = await log.append(record(1))
    second = await db.unit(lambda conn: sync_append(conn, record(2)))
    assert second == {
        "id": second["id"],
        "at": 2002.0,
        "actor": "user:u2",
        "action": "open",
        "access_point_id": "ap-1",
        "decision": "granted",
        "reason": "",
        "command_id": "c2",
        "chain": chain_of(record(2)),
        "subject": None,
        "personal": None,
        "prev_hash": first["hash"],
        "hash": entry_hash(first["hash"], record(2)),
    }
    assert second["id"] > first["id"]
    stored = await log.page()
    assert [(e["id"], e["prev_hash"], e["hash"]) for e in stored] == [
        (first["id"], GENESIS, first["hash"]),
        (second["id"], first["hash"], second["hash"]),
    ]
    assert await log.verify() == (True, 2, None)


async def test_the_first_entry_appended_in_a_unit_starts_from_genesis(db: Database) -> None:
    entry = await db.unit(lambda conn: sync_append(conn, record(1)))
    assert entry["prev_hash"] == GENESIS
    assert entry["hash"] == entry_hash(GENESIS, record(1))
    assert await AuditLog(db).verify() == (True, 1, None)


@pytest.mark.parametrize("db", ["postgresql"], indirect=True)
async def test_a_unit_on_postgresql_takes_the_chain_lock_before_it_reads_the_last_hash(
    db: Database,
) -> None:
    """The lock, then one statement that reads the chain's last hash and inserts the entry
    linked to it (its hash made by the server, the same as ``entry_hash``)."""
    spy: list[Recording] = []

    def fn(conn: UnitConnection) -> dict[str, Any]:
        spy.append(Recording(conn, "postgresql"))
        return sync_append(spy[0], record(1))

    first = await db.unit(fn)
    second = await db.unit(lambda conn: sync_append(conn, record(2)))
    statements = spy[0].statements
    assert len(statements) == 2
    assert statements[0] == (UNIT_LOCK, {"k": LOCK_KEY, "s": chain_of(record(1))})
    assert "SELECT hash FROM audit WHERE chain = :chain" in statements[1][0]
    assert "INSERT INTO audit" in statements[1][0]
    assert statements[1][1]["chain"] == chain_of(record(1))
    assert first["hash"] == entry_hash(GENESIS, record(1))
    assert second["prev_hash"] == first["hash"]
    assert second["hash"] == entry_hash(first["hash"], record(2))
    assert await AuditLog(db).verify() == (True, 2, None)


async def test_a_unit_on_sqlite_takes_no_advisory_lock(db: Database) -> None:
    spy: list[Recording] = []

    def fn(conn: UnitConnection) -> dict[str, Any]:
        spy.append(Recording(conn, "sqlite"))
        return sync_append(spy[0], record(1))

    await db.unit(fn)
    assert not any("pg_advisory" in sql for sql, _ in spy[0].statements)


class _Result:
    def __init__(self, rows: list[Row]) -> None:
        self.rows = rows
        self.returns_rows = True

    def mappings(self) -> list[Row]:
        return self.rows


class FakeConnection:
    """Enough of an ``AsyncConnection`` for ``append``: records what it is asked to run."""

    def __init__(self) -> None:
        self.statements: list[tuple[str, dict[str, Any]]] = []

    async def execute(self, statement: Any, params: dict[str, Any]) -> _Result:
        sql = str(statement)
        self.statements.append((sql, dict(params)))
        if "INSERT INTO audit" in sql:
            return _Result([{"id": 7, "prev_hash": GENESIS, "hash": "f" * 64}])
        return _Result([])


async def test_an_append_on_postgresql_takes_the_chain_lock_first() -> None:
    conn = FakeConnection()
    entry = await append(conn, "postgresql", record(1))  # type: ignore[arg-type]
    assert conn.statements[0] == (LOCK, {"k": LOCK_KEY, "chain": chain_of(record(1))})
    assert len(conn.statements) == 2  # the lock, then the last hash read by the insert
    assert "INSERT INTO audit" in conn.statements[1][0]
    assert entry["id"] == 7 and entry["prev_hash"] == GENESIS


class FakePostgres:
    """A database on PostgreSQL as ``AuditLog.append`` sees it: a dialect and transactions."""

    dialect = "postgresql"

    def __init__(self) -> None:
        self.conn = FakeConnection()

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[FakeConnection]:
        yield self.conn


async def test_the_logs_appends_on_postgresql_take_the_chain_lock() -> None:
    db = FakePostgres()
    entry = await AuditLog(db).append(record(1))  # type: ignore[arg-type]
    assert db.conn.statements[0] == (LOCK, {"k": LOCK_KEY, "chain": chain_of(record(1))})
    assert entry["id"] == 7


async def test_an_append_on_sqlite_takes_no_advisory_lock() -> None:
    conn = FakeConnection()
    await append(conn, "sqlite", record(1))  # type: ignore[arg-type]
    assert not any("pg_advisory" in sql for sql, _ in conn.statements)


async def test_a_page_without_an_access_point_lists_every_entry_with_its_columns(
    db: Database,
) -> None:
    log = AuditLog(db)
    one = await log.append(record(1, "ap-1"))
    two = await log.append(record(2, "ap-2"))  # another chain: its first entry
    three = await log.append(record(3, None))
    assert len({one["chain"], two["chain"], three["chain"]}) == 3
    page = await log.page()
    assert [e["id"] for e in page] == [one["id"], two["id"], three["id"]]
    assert page[1] == {
        "id": two["id"],
        "at": 2002.0,
        "actor": "user:u2",
        "action": "open",
        "access_point_id": "ap-2",
        "decision": "granted",
        "reason": "",
        "command_id": "c2",
        "subject": None,
        "personal": None,
        "prev_hash": GENESIS,
        "hash": two["hash"],
    }
    assert [e["id"] for e in await log.page(after=one["id"])] == [two["id"], three["id"]]


async def test_a_page_holds_a_hundred_entries_unless_told_otherwise(db: Database) -> None:
    await db.unit(lambda conn: [sync_append(conn, record(n)) for n in range(101)])
    log = AuditLog(db)
    assert len(await log.page()) == 100
    assert len(await log.page(access_point_id="ap-1")) == 100


async def test_verify_walks_past_its_first_page_and_finds_an_edit_there(db: Database) -> None:
    entries = await db.unit(lambda conn: [sync_append(conn, record(n)) for n in range(1005)])
    log = AuditLog(db)
    assert await log.verify() == (True, 1005, None)
    await db.execute("UPDATE audit SET actor = 'user:x' WHERE id = :id", id=entries[1002]["id"])
    assert await log.verify() == (False, 1002, entries[1002]["id"])
