"""Database.unit: a synchronous transaction in one hop, group-committed (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa

from propdev.storage import Database, StoreUnavailableError, UnitConnection, audit, migrate, run
from propdev.storage.audit import AuditLog, AuditRecord, chain_of, sync_append
from propdev.storage.audit import append as append_in_transaction
from tests.conftest import POSTGRES_URL
from tests.support.postgres import fresh_database


def _insert_site(site_id: str) -> Callable[[UnitConnection], str]:
    def unit(conn: UnitConnection) -> str:
        conn.run("INSERT INTO sites (id, name) VALUES (:id, :n)", id=site_id, n=site_id)
        return site_id

    return unit


def _fail_after_insert(site_id: str) -> Callable[[UnitConnection], str]:
    def unit(conn: UnitConnection) -> str:
        conn.run("INSERT INTO sites (id, name) VALUES (:id, :n)", id=site_id, n=site_id)
        raise LookupError("this unit changes its mind")

    return unit


async def _site_ids(db: Database) -> set[str]:
    return {r["id"] for r in await db.fetch_all("SELECT id FROM sites")}


async def test_a_unit_returns_its_result_once_committed(db: Database) -> None:
    assert await db.unit(_insert_site("s1")) == "s1"

    assert await _site_ids(db) == {"s1"}


async def test_a_failing_unit_is_rolled_back_alone_among_concurrent_ones(db: Database) -> None:
    units = [_insert_site(f"ok{n}") for n in range(10)]
    units.insert(5, _fail_after_insert("bad"))

    results = await asyncio.gather(*(db.unit(u) for u in units), return_exceptions=True)

    assert [type(r) for r in results].count(LookupError) == 1
    assert await _site_ids(db) == {f"ok{n}" for n in range(10)}


async def test_a_constraint_violation_surfaces_as_sqlalchemys_integrity_error(
    db: Database,
) -> None:
    await db.unit(_insert_site("dup"))

    with pytest.raises(sa.exc.IntegrityError):
        await db.unit(_insert_site("dup"))
    with pytest.raises(sa.exc.IntegrityError):
        async with db.transaction() as conn:
            await run(conn, "INSERT INTO sites (id, name) VALUES ('dup', 'again')")


async def test_concurrent_audit_appends_in_units_keep_the_chain(db: Database) -> None:
    def append(n: int) -> Callable[[UnitConnection], None]:
        def unit(conn: UnitConnection) -> None:
            record = AuditRecord(
                at=float(n), actor="test", action="open", access_point_id=None, decision="granted"
            )
            sync_append(conn, record)
            if n % 7 == 3:
                raise LookupError("rolled back after its audit entry")

        return unit

    results = await asyncio.gather(*(db.unit(append(n)) for n in range(40)), return_exceptions=True)
    async with db.transaction() as conn:  # and an interactive append after them
        await append_in_transaction(
            conn, db.dialect, AuditRecord(1e9, "test", "open", None, "granted")
        )

    failed = sum(isinstance(r, LookupError) for r in results)
    ok, checked, bad = await AuditLog(db).verify()
    assert (ok, bad) == (True, None)
    assert checked == 40 - failed + 1


async def test_a_transaction_that_raises_leaves_nothing(db: Database) -> None:
    with pytest.raises(LookupError):
        async with db.transaction() as conn:
            await run(conn, "INSERT INTO sites (id, name) VALUES ('gone', 'gone')")
            raise LookupError

    assert await _site_ids(db) == set()


@pytest.fixture
async def sqlite_db(tmp_path: Path) -> AsyncIterator[Database]:
    """Group commit is SQLite's writer thread's: this test runs on SQLite only."""
    database = Database(f"sqlite:///{tmp_path}/group.db")
    await migrate(database)
    yield database
    await database.close()


async def test_units_queued_behind_a_transaction_share_one_commit_on_sqlite(
    sqlite_db: Database,
) -> None:
    db = sqlite_db
    executor = db._sqlite
    assert executor is not None
    async with db.transaction() as conn:  # the writer thread is busy with this one
        await run(conn, "INSERT INTO sites (id, name) VALUES ('first', 'first')")
        pending = [asyncio.ensure_future(db.unit(_insert_site(f"g{n}"))) for n in range(8)]
        # Each unit reaches the writer's queue before this statement's answer comes back.
        await run(conn, "SELECT 1 AS one")
        commits_before = executor.commits

    await asyncio.gather(*pending)

    assert executor.commits - commits_before == 2  # the transaction's, then one for all 8
    assert await _site_ids(db) == {"first", *(f"g{n}" for n in range(8))}


@pytest.fixture
async def pg_db() -> AsyncIterator[Database]:
    """The machine's real PostgreSQL with one units writer (the default is 4), so that which
    units share a commit is known."""
    with fresh_database() as url:
        database = Database(url, pg_writers=1)
        try:
            await migrate(database)
            yield database
        finally:
            await database.close()


async def test_units_queued_while_the_writer_is_busy_share_one_commit_on_postgresql(
    pg_db: Database,
) -> None:
    db = pg_db
    writer = db._pg_units
    entered, release = threading.Event(), threading.Event()

    def held(conn: UnitConnection) -> str:
        entered.set()
        assert release.wait(30)  # keeps the writer busy while the others queue up
        return _insert_site("first")(conn)

    first = asyncio.ensure_future(db.unit(held))
    assert await asyncio.to_thread(entered.wait, 30)
    commits_before = writer.commits
    pending = [asyncio.ensure_future(db.unit(_insert_site(f"g{n}"))) for n in range(8)]
    pending.append(asyncio.ensure_future(db.unit(_fail_after_insert("bad"))))
    for _ in range(1000):  # each task's first step puts its unit in the writer's queue
        if writer._queue.qsize() == len(pending):
            break
        await asyncio.sleep(0)
    assert writer._queue.qsize() == len(pending)
    release.set()

    assert await first == "first"
    results = await asyncio.gather(*pending, return_exceptions=True)

    assert results[:8] == [f"g{n}" for n in range(8)]
    assert isinstance(results[8], LookupError)  # rolled back alone, to its savepoint
    assert writer.commits - commits_before == 2  # the held unit's, then one for the 9 queued
    assert await _site_ids(db) == {"first", *(f"g{n}" for n in range(8))}


async def test_a_postgresql_commit_that_fails_fails_every_unit_of_its_batch(
    pg_db: Database,
) -> None:
    db = pg_db
    writer = db._pg_units
    entered, release = threading.Event(), threading.Event()

    def held(conn: UnitConnection) -> str:
        entered.set()
        assert release.wait(30)
        return "held"

    def deferred_violation(conn: UnitConnection) -> str:
        # A deferred constraint is checked at COMMIT: the batch's one commit fails.
        conn.run("CREATE TEMP TABLE t (id INT UNIQUE DEFERRABLE INITIALLY DEFERRED)")
        conn.run("INSERT INTO t VALUES (1), (1)")
        return "never acknowledged"

    first = asyncio.ensure_future(db.unit(held))
    assert await asyncio.to_thread(entered.wait, 30)
    batch = [
        asyncio.ensure_future(db.unit(unit))
        for unit in (_insert_site("a"), deferred_violation, _insert_site("b"))
    ]
    for _ in range(1000):  # each task's first step puts its unit in the writer's queue
        if writer._queue.qsize() == len(batch):
            break
        await asyncio.sleep(0)
    release.set()
    assert await first == "held"

    results = await asyncio.gather(*batch, return_exceptions=True)

    assert [type(r) for r in results] == [sa.exc.IntegrityError] * 3  # none acknowledged
    assert await _site_ids(db) == set()
    assert await db.unit(_insert_site("after")) == "after"  # the writer goes on
    assert await _site_ids(db) == {"after"}


async def test_a_batched_unit_whose_chain_is_held_elsewhere_is_put_off_not_waited_for(
    pg_db: Database,
) -> None:
    # Two batches taking two chains' locks in opposite orders used to deadlock; now only a
    # transaction's first unit waits for a lock, a later one is run again in the next batch.
    db = pg_db
    writer = db._pg_units
    chain_a = chain_of(AuditRecord(0.0, "u", "open", "door-a", "granted"))
    chain_b = next(
        c
        for n in range(100)
        if (c := chain_of(AuditRecord(0.0, "u", "open", f"door-b{n}", "granted"))) != chain_a
    )
    door_b = next(
        f"door-b{n}"
        for n in range(100)
        if chain_of(AuditRecord(0.0, "u", "open", f"door-b{n}", "granted")) == chain_b
    )
    entered, release = threading.Event(), threading.Event()

    def held(conn: UnitConnection) -> str:
        entered.set()
        assert release.wait(30)
        return "held"

    def append(door: str) -> Callable[[UnitConnection], str]:
        def unit(conn: UnitConnection) -> str:
            return str(sync_append(conn, AuditRecord(1.0, "u", "open", door, "granted"))["hash"])

        return unit

    other = psycopg.connect(POSTGRES_URL + db.url.rsplit("/", 1)[1], autocommit=False)
    try:
        other.execute("SELECT pg_advisory_xact_lock(%s, %s)", (audit._LOCK_KEY, chain_a))
        first = asyncio.ensure_future(db.unit(held))
        assert await asyncio.to_thread(entered.wait, 30)
        on_b = asyncio.ensure_future(db.unit(append(door_b)))
        on_a = asyncio.ensure_future(db.unit(append("door-a")))  # batched after on_b
        for _ in range(1000):  # each task's first step puts its unit in the writer's queue
            if writer._queue.qsize() == 2:
                break
            await asyncio.sleep(0)
        assert writer._queue.qsize() == 2
        release.set()
        assert await first == "held"

        await asyncio.wait_for(on_b, 30)  # committed while chain a is still held elsewhere
        assert not on_a.done()
        assert writer.retried == 1
        # on_b's chain is free: its batch did not keep its lock while on_a waited
        row = other.execute(
            "SELECT pg_try_advisory_xact_lock(%s, %s)", (audit._LOCK_KEY, chain_b)
        ).fetchone()
        assert row == (True,)
    finally:
        other.rollback()  # releases chain a (and b)
        other.close()
    await asyncio.wait_for(on_a, 30)
    assert await AuditLog(db).verify() == (True, 2, None)


def _backend_pid(conn: UnitConnection) -> int:
    return int(conn.run("SELECT pg_backend_pid() AS pid")[0]["pid"])


async def test_a_unit_on_a_dead_pooled_connection_runs_once_more_on_a_fresh_one(
    pg_db: Database,
) -> None:
    """The writers' connections are not pinged: the one a primary switch killed fails the
    batch's first statement, and the batch runs again, once, on a fresh connection."""
    db = pg_db
    pooled = await db.unit(_backend_pid)
    with psycopg.connect(db.url, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s, 5000)", (pooled,))
    calls = 0

    def insert_and_tell(conn: UnitConnection) -> int:
        nonlocal calls
        calls += 1
        _insert_site("s1")(conn)
        return _backend_pid(conn)

    fresh = await db.unit(insert_and_tell)

    assert fresh != pooled
    assert (calls, db._pg_units.reconnected) == (2, 1)
    assert await _site_ids(db) == {"s1"}


async def test_a_unit_whose_connection_dies_after_a_statement_is_not_run_again(
    pg_db: Database,
) -> None:
    """Once a statement of the batch succeeded the connection's death fails the batch (the
    store unavailable): it is not run again."""
    db = pg_db
    calls = 0

    def insert_then_lose_the_connection(conn: UnitConnection) -> None:
        nonlocal calls
        calls += 1
        _insert_site("s1")(conn)
        conn.run("SELECT pg_terminate_backend(pg_backend_pid())")

    with pytest.raises(StoreUnavailableError):
        await db.unit(insert_then_lose_the_connection)

    assert (calls, db._pg_units.reconnected) == (1, 0)
    assert await _site_ids(db) == set()
    assert await db.unit(_insert_site("after")) == "after"


async def test_a_failing_unit_between_two_others_of_a_batch_undoes_only_its_own_work(
    pg_db: Database,
) -> None:
    """The savepoints are not released one by one: the failing unit's rollback goes back to
    its own, the units before and after it commit."""
    db = pg_db
    writer = db._pg_units
    entered, release = threading.Event(), threading.Event()

    def held(conn: UnitConnection) -> str:
        entered.set()
        assert release.wait(30)
        return "held"

    first = asyncio.ensure_future(db.unit(held))
    assert await asyncio.to_thread(entered.wait, 30)
    commits_before = writer.commits
    units = (_insert_site("a"), _fail_after_insert("bad"), _insert_site("b"), _insert_site("c"))
    batch = [asyncio.ensure_future(db.unit(unit)) for unit in units]
    for _ in range(1000):  # each task's first step puts its unit in the writer's queue
        if writer._queue.qsize() == len(batch):
            break
        await asyncio.sleep(0)
    assert writer._queue.qsize() == len(batch)
    release.set()
    assert await first == "held"

    results = await asyncio.gather(*batch, return_exceptions=True)

    assert results[0] == "a" and isinstance(results[1], LookupError)
    assert results[2:] == ["b", "c"]
    assert writer.commits - commits_before == 2
    assert await _site_ids(db) == {"a", "b", "c"}
