"""Database.lookup: a read by key without a thread hop on SQLite, ``fetch_one`` elsewhere."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import sqlalchemy as sa

from propdev.storage import Database, UnitConnection, migrate
from propdev.storage.sqlite_executor import SqliteConnection, SqliteExecutor, translate


def _add_site(conn: UnitConnection) -> None:
    conn.run("INSERT INTO sites (id, name) VALUES ('s1', 'North')")


async def test_a_lookup_finds_the_committed_row_or_none(db: Database) -> None:
    assert await db.lookup("SELECT name FROM sites WHERE id = :id", id="s1") is None

    await db.unit(_add_site)

    assert await db.lookup("SELECT name FROM sites WHERE id = :id", id="s1") == {"name": "North"}


@pytest.fixture
async def executor(tmp_path: Path) -> AsyncIterator[SqliteExecutor]:
    """The SQLite executor of a database holding site s1."""
    database = Database(f"sqlite:///{tmp_path}/lookups.db")
    await migrate(database)
    await database.unit(_add_site)
    assert database._sqlite is not None
    yield database._sqlite
    await database.close()


def _name_on(threads: list[int]) -> Callable[[SqliteConnection], object]:
    def read(conn: SqliteConnection) -> object:
        threads.append(threading.get_ident())
        return conn.run("SELECT name FROM sites WHERE id = 's1'")[0]["name"]

    return read


async def test_a_lookup_runs_on_the_calling_thread_on_sqlite(
    executor: SqliteExecutor,
) -> None:
    threads: list[int] = []

    names = [await executor.lookup(_name_on(threads)) for _ in range(3)]

    assert names == ["North"] * 3
    assert threads == [threading.get_ident()] * 3


def _busy() -> sqlite3.OperationalError:
    error = sqlite3.OperationalError("database is locked")
    error.sqlite_errorcode = sqlite3.SQLITE_BUSY
    return error


async def test_a_lookup_goes_to_a_reader_thread_when_the_database_is_busy(
    executor: SqliteExecutor,
) -> None:
    threads: list[int] = []

    def busy_here_first(conn: SqliteConnection) -> object:
        threads.append(threading.get_ident())
        if len(threads) == 1:
            raise translate(_busy(), "SELECT", {})  # as SqliteConnection.run raises it
        return conn.run("SELECT name FROM sites WHERE id = 's1'")[0]["name"]

    assert await executor.lookup(busy_here_first) == "North"
    assert threads[0] == threading.get_ident()
    assert threads[1] != threading.get_ident()


async def test_a_lookup_error_other_than_busy_goes_to_the_caller(
    executor: SqliteExecutor,
) -> None:
    threads: list[int] = []

    def broken(conn: SqliteConnection) -> object:
        threads.append(threading.get_ident())
        return conn.run("SELECT * FROM no_such_table")

    with pytest.raises(sa.exc.OperationalError, match="no such table"):
        await executor.lookup(broken)
    assert threads == [threading.get_ident()]  # not retried on a reader thread
