"""One data-access layer over SQLite (embedded default) and PostgreSQL (cluster).

SQL is written once with ``:named`` parameters. On PostgreSQL, SQLAlchemy Core adapts it to
psycopg: the async engines serve the request path, one for transactions and one for
single-statement reads (``fetch_one``, ``fetch_all``, ``lookup``), whose connections run in
AUTOCOMMIT: a read is one round trip, not BEGIN, the query and a ROLLBACK on return, and no
ping at checkout (a dead pooled connection costs one retry instead, see ``_pg_read``). On
SQLite, ``sqlite3`` takes it as it is: one writer thread and a few reader threads
(``propdev.storage.sqlite_executor``) serve the request path, a thread hop per statement
instead of an async driver's several. Either way a sync engine over the same URL serves code
that must run in a worker thread (the OAuth server library is synchronous); on PostgreSQL the
group-committed units have a sync engine of their own (``units_engine``, no ping either).

``Database.unit(fn)`` runs a synchronous ``fn(conn)`` inside one transaction in one hop,
group-committed with the units queued alongside it; ``transaction()`` is the interactive form
for code that awaits between statements. Inside either, ``after_commit(fn)`` defers ``fn()``
until that transaction has committed (and drops it if it rolls back).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import itertools
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, cast

import sqlalchemy as sa
import structlog
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

from propdev.storage.errors import StoreUnavailableError
from propdev.storage.pg_units import LockBusy, PgUnits, may_wait
from propdev.storage.postgres import mark_failover_errors, sqlalchemy_url
from propdev.storage.sqlite_executor import (
    SqliteConnection,
    SqliteExecutor,
    SqliteReads,
    SqliteSession,
)

if TYPE_CHECKING:  # sqlalchemy.ext.asyncio (and the ORM it imports) only when first used
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

Row = Mapping[str, Any]
T = TypeVar("T")
_UNAVAILABLE = (sa.exc.OperationalError, sa.exc.InterfaceError, OSError)
_memory_names = itertools.count()
_log = structlog.get_logger(__name__)
# The callbacks waiting for the commit of the unit or transaction the caller runs in.
_AFTER_COMMIT: contextvars.ContextVar[list[Callable[[], None]] | None] = contextvars.ContextVar(
    "propdev_after_commit", default=None
)


@functools.lru_cache(maxsize=512)
def _text(sql: str) -> sa.TextClause:
    """``sa.text(sql)``, made once per statement: parsing its ``:name`` parameters costs tens
    of microseconds, a good part of a hot statement's client time (the clause is immutable
    and shared across threads, as SQLAlchemy's module-level constructs are)."""
    return sa.text(sql)


def after_commit(callback: Callable[[], None]) -> None:
    """Call ``callback()`` once the current ``Database.unit`` or ``transaction()`` has
    committed, on the event loop, after the unit or the ``async with`` block returns; never if
    it rolls back (a unit that raises, a group commit or a commit that fails).

    Outside both (a connection of one's own, whose commit nobody here sees) the callback is
    dropped. A caller cancelled between the commit and its return loses its callbacks too:
    they are for copies of what was committed (the audit log stream), not for the record.
    """
    pending = _AFTER_COMMIT.get()
    if pending is not None:
        pending.append(callback)


def _collecting(
    fn: Callable[[UnitConnection], T], pending: list[Callable[[], None]]
) -> Callable[[Any], T]:
    """``fn`` collecting its ``after_commit`` callbacks into ``pending`` (in whatever thread
    runs it; a retried unit starts again from none)."""

    def unit(conn: Any) -> T:
        pending.clear()
        token = _AFTER_COMMIT.set(pending)
        try:
            return fn(conn)
        finally:
            _AFTER_COMMIT.reset(token)

    return unit


def _committed(pending: list[Callable[[], None]]) -> None:
    for callback in pending:
        try:
            callback()
        except Exception:  # committed all the same: its caller is not to fail for a copy
            _log.exception("after_commit_failed")


class UnitConnection(Protocol):
    """What ``Database.unit(fn)`` hands to ``fn``: synchronous statements in one transaction."""

    @property
    def dialect(self) -> str: ...

    def run(self, sql: str, **params: Any) -> list[Row]:
        """Execute ``sql`` (``:name`` parameters) and return its rows as dicts (or [])."""
        ...


class _SaUnitConnection:
    """A unit's connection on PostgreSQL: a SQLAlchemy sync connection in a worker thread;
    ``statements`` counts those that succeeded (``PgUnits`` retries a batch on a dead pooled
    connection only while it is 0)."""

    __slots__ = ("conn", "statements")
    dialect = "postgresql"

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.statements = 0

    def run(self, sql: str, **params: Any) -> list[Row]:
        rows = sync_run(self.conn, sql, **params)
        self.statements += 1
        return rows


def unit_lock(conn: UnitConnection, key: int, sub: int) -> None:
    """Take PostgreSQL's advisory lock ``(key, sub)`` until the unit's transaction ends
    (nothing on SQLite, whose one writer runs a unit at a time).

    Inside a group-committed batch only the first unit waits for it; a later one only tries,
    and raises ``LockBusy`` if it is held elsewhere, to be run again first in the next
    transaction (``propdev.storage.pg_units``): batches never wait for each other while
    holding locks, so they cannot deadlock. The unit's statements before the lock are rolled
    back and run again with it: take the lock before anything the unit would not redo.
    """
    if conn.dialect != "postgresql":
        return
    if may_wait():
        conn.run("SELECT pg_advisory_xact_lock(:k, :s)", k=key, s=sub)
        return
    rows = conn.run("SELECT pg_try_advisory_xact_lock(:k, :s) AS got", k=key, s=sub)
    if not rows[0]["got"]:
        raise LockBusy(f"advisory lock ({key}, {sub})")


def driver_urls(url: str) -> tuple[str, str]:
    """Return (async URL, sync URL) for a ``sqlite:///`` or ``postgresql://`` URL."""
    if url.startswith("sqlite:"):
        rest = url.split(":", 1)[1]
        return f"sqlite+aiosqlite:{rest}", f"sqlite+pysqlite:{rest}"
    if url.startswith(("postgresql:", "postgres:")):
        pg = sqlalchemy_url(url)  # libpq multi-host URLs too
        return pg, pg
    raise ValueError(f"unsupported database URL: {url!r}")


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")  # acknowledged means durable
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


class Database:
    """An async engine plus a lazily made sync engine over the same database."""

    def __init__(self, url: str, *, pool_size: int = 10, pg_writers: int = 4) -> None:
        self.url = url
        self.dialect = "sqlite" if url.startswith("sqlite") else "postgresql"
        async_url, self._sync_url = driver_urls(url)
        if self.dialect == "sqlite" and url.startswith("sqlite:///"):
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        self._async_url = async_url
        self._pool_size = pool_size
        self._engine: AsyncEngine | None = None  # made on first use (never, on SQLite's path)
        self._read_engine: AsyncEngine | None = None  # PostgreSQL's single-statement reads
        self._read_pool_stale = False  # a failover seen elsewhere: drop the read pool
        self._sync_engine: Engine | None = None
        # SQLite allows one writer at a time; serialising writers here avoids busy retries.
        self.write_lock = asyncio.Lock() if self.dialect == "sqlite" else None
        self._sqlite: SqliteExecutor | None = None
        if self.dialect == "sqlite":
            self._sqlite = _sqlite_executor(url)
        # PostgreSQL's units: group-committed by ``pg_writers`` threads on ``units_engine``.
        self._pg_writers = pg_writers
        self._units_engine: Engine | None = None
        self._pg_units = PgUnits(lambda: self.units_engine, _SaUnitConnection, writers=pg_writers)

    @property
    def engine(self) -> AsyncEngine:
        """The async engine (PostgreSQL's request path); SQLite serves it with its own
        threads, so a node on SQLite never imports SQLAlchemy's asyncio extension."""
        if self._engine is None:
            from sqlalchemy.ext.asyncio import create_async_engine

            kwargs: dict[str, Any] = {}
            if self.dialect == "postgresql":
                kwargs = {
                    "pool_size": self._pool_size,
                    "max_overflow": self._pool_size,
                    "pool_pre_ping": True,
                }
            self._engine = create_async_engine(self._async_url, **kwargs)
            if self.dialect == "postgresql":
                mark_failover_errors(self._engine.sync_engine, self._failed_over)
            if self.dialect == "sqlite":
                event.listen(self._engine.sync_engine, "connect", _sqlite_pragmas)
        return self._engine

    @property
    def read_engine(self) -> AsyncEngine:
        """PostgreSQL's engine for single-statement reads outside a transaction: its
        connections are in AUTOCOMMIT (no BEGIN before the query, nothing to roll back when
        it returns to the pool) and are not pinged at checkout. A primary switch kills pooled
        connections (``propdev.storage.postgres``): a read that finds its connection dead
        invalidates the pool, as the ping would have, and runs once more on a fresh one
        (``_pg_read``; reads are idempotent). Transactions and units keep their engines."""
        if self._read_engine is None:
            from sqlalchemy.ext.asyncio import create_async_engine

            assert self.dialect == "postgresql", "SQLite reads go through its reader threads"
            self._read_engine = create_async_engine(
                self._async_url,
                pool_size=self._pool_size,
                max_overflow=self._pool_size,
                isolation_level="AUTOCOMMIT",
            )
            mark_failover_errors(self._read_engine.sync_engine, self._failed_over)
        return self._read_engine

    def _failed_over(self) -> None:
        """A failover's error on any engine (any thread): the read pool is dropped before
        the next read, whose connections may lead to a server that is no longer primary."""
        self._read_pool_stale = True

    @property
    def units_engine(self) -> Engine:
        """The sync engine of PostgreSQL's units writers (``propdev.storage.pg_units``): a
        connection per writer, not pinged at checkout (a dead one costs the batch a retry on
        a fresh connection instead of every batch a round trip)."""
        if self._units_engine is None:
            self._units_engine = sa.create_engine(
                self._sync_url, pool_size=self._pg_writers, max_overflow=self._pg_writers
            )
            mark_failover_errors(self._units_engine, self._failed_over)
        return self._units_engine

    @property
    def sync_engine(self) -> Engine:
        if self._sync_engine is None:
            self._sync_engine = sa.create_engine(self._sync_url, pool_pre_ping=True)
            if self.dialect == "postgresql":
                mark_failover_errors(self._sync_engine, self._failed_over)
            if self.dialect == "sqlite":
                event.listen(self._sync_engine, "connect", _sqlite_pragmas)
        return self._sync_engine

    async def close(self) -> None:
        if self._sqlite is not None:
            await asyncio.to_thread(self._sqlite.close)
        await asyncio.to_thread(self._pg_units.close)
        if self._engine is not None:
            await self._engine.dispose()
        if self._read_engine is not None:
            await self._read_engine.dispose()
        if self._sync_engine is not None:
            self._sync_engine.dispose()
        if self._units_engine is not None:
            self._units_engine.dispose()

    @contextlib.asynccontextmanager
    async def connect(self) -> AsyncIterator[AsyncConnection]:
        """A connection for several reads (autocommit semantics are not relied upon); one
        statement is cheaper through ``fetch_one``/``fetch_all``/``lookup``."""
        if self._sqlite is not None:
            # Not an AsyncConnection: it serves ``run(conn, ...)`` and ``conn.execute(sa.text)``.
            yield cast("AsyncConnection", SqliteReads(self._sqlite))
            return
        try:
            async with self.engine.connect() as conn:
                yield conn
        except (sa.exc.OperationalError, sa.exc.InterfaceError, OSError) as exc:
            raise StoreUnavailableError(str(exc).splitlines()[0]) from exc

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        """A connection inside one transaction, committed on success (then its
        ``after_commit`` callbacks run)."""
        lock = self.write_lock
        pending: list[Callable[[], None]] = []
        try:
            if lock is not None:
                await lock.acquire()
            try:
                token = _AFTER_COMMIT.set(pending)
                try:
                    if self._sqlite is not None:
                        # Not an AsyncConnection: a ``SqliteSession`` on the writer thread,
                        # which serves ``run(conn, ...)`` and ``conn.execute(sa.text(...))``.
                        async with self._sqlite.session() as session:
                            yield cast("AsyncConnection", session)
                    else:
                        async with self.engine.begin() as conn:
                            yield conn
                finally:
                    _AFTER_COMMIT.reset(token)
            finally:
                if lock is not None:
                    lock.release()
        except _UNAVAILABLE as exc:
            raise StoreUnavailableError(str(exc).splitlines()[0]) from exc
        _committed(pending)

    async def unit(self, fn: Callable[[UnitConnection], T]) -> T:
        """Run ``fn(conn)`` in one transaction and return its result once it is committed.

        ``fn`` is synchronous and runs in a worker thread in one hop (no awaits between its
        statements). On SQLite, units queued at the same time share one commit (group
        commit): each runs in its own savepoint, so one that raises is rolled back alone, and
        no caller is released before the commit that holds its work. On PostgreSQL the same,
        on ``units_engine``'s connections in a few writer threads (``propdev.storage.pg_units``).
        ``after_commit`` callbacks run once it has committed, before this returns.
        """
        pending: list[Callable[[], None]] = []
        collecting = _collecting(fn, pending)
        try:
            if self._sqlite is not None:
                result: T = await self._sqlite.unit(collecting)
            else:
                result = await self._pg_units.unit(collecting)
        except _UNAVAILABLE as exc:
            raise StoreUnavailableError(str(exc).splitlines()[0]) from exc
        _committed(pending)
        return result

    async def _read(self, sql: str, params: Mapping[str, Any]) -> list[Row]:
        assert self._sqlite is not None
        try:
            return await self._sqlite.read(lambda conn: conn.run_params(sql, params))
        except _UNAVAILABLE as exc:
            raise StoreUnavailableError(str(exc).splitlines()[0]) from exc

    async def _pg_read(self, sql: str, params: Mapping[str, Any], *, first: bool) -> list[Row]:
        """One statement on the read engine (AUTOCOMMIT): its rows, or only the first.

        A pooled connection that turns out dead (the server restarted or switched, see
        ``propdev.storage.postgres``) is invalidated with the whole pool by SQLAlchemy's
        disconnect handling, as ``pool_pre_ping`` would have at checkout; the read then runs
        once more on a fresh connection. A second failure, or a fresh connection that
        cannot be made, is the store unavailable.
        """
        if self._read_pool_stale and self._read_engine is not None:
            self._read_pool_stale = False
            await self._read_engine.dispose()  # checked-out connections are dropped on return
        for attempt in (1, 2):
            try:
                async with self.read_engine.connect() as conn:
                    try:
                        result = await conn.execute(_text(sql), params)
                    except (sa.exc.DBAPIError, StoreUnavailableError) as exc:
                        if attempt == 2 or not conn.invalidated:
                            raise
                        _log.info("store_read_retried", error=str(exc).splitlines()[0])
                        continue
                    if first:
                        row = result.mappings().first()
                        return [dict(row)] if row is not None else []
                    return [dict(r) for r in result.mappings()]
            except _UNAVAILABLE as exc:
                raise StoreUnavailableError(str(exc).splitlines()[0]) from exc
        raise AssertionError("unreachable: the second attempt returns or raises")

    async def fetch_all(self, sql: str, **params: Any) -> list[Row]:
        if self._sqlite is not None:
            return await self._read(sql, params)
        return await self._pg_read(sql, params, first=False)

    async def lookup(self, sql: str, **params: Any) -> Row | None:
        """``fetch_one`` for a read of one row by key on a hot path (an index, no scan).

        On SQLite it runs on the event loop's own read connection, without the thread hop of
        ``fetch_one`` (see ``SqliteExecutor.lookup``); on PostgreSQL it is ``fetch_one``.
        """
        if self._sqlite is None:
            return await self.fetch_one(sql, **params)
        try:
            rows = await self._sqlite.lookup(lambda conn: conn.run_params(sql, params))
        except _UNAVAILABLE as exc:
            raise StoreUnavailableError(str(exc).splitlines()[0]) from exc
        return rows[0] if rows else None

    async def fetch_one(self, sql: str, **params: Any) -> Row | None:
        if self._sqlite is not None:
            rows = await self._read(sql, params)
            return rows[0] if rows else None
        rows = await self._pg_read(sql, params, first=True)
        return rows[0] if rows else None

    async def execute(self, sql: str, **params: Any) -> int:
        if self._sqlite is not None:
            return await self.unit(lambda conn: _sqlite_rowcount(conn, sql, params))
        async with self.transaction() as conn:
            result = await conn.execute(_text(sql), params)
            return result.rowcount

    async def execute_many(self, sql: str, rows: Sequence[Mapping[str, Any]]) -> None:
        if not rows:
            return
        if self._sqlite is not None:
            batch = list(rows)
            await self.unit(lambda conn: _sqlite_execute_many(conn, sql, batch))
            return
        async with self.transaction() as conn:
            await conn.execute(_text(sql), list(rows))

    async def ping(self) -> bool:
        try:
            await self.fetch_one("SELECT 1 AS ok")
        except StoreUnavailableError:
            return False
        return True

    # -- sync helpers, for worker threads only ------------------------------------------

    def sync_fetch_one(self, sql: str, **params: Any) -> Row | None:
        with _store_errors(), self.sync_engine.connect() as conn:
            row = conn.execute(_text(sql), params).mappings().first()
            return dict(row) if row is not None else None

    def sync_execute(self, sql: str, **params: Any) -> int:
        with _store_errors(), self.sync_engine.begin() as conn:
            return conn.execute(_text(sql), params).rowcount

    @contextlib.contextmanager
    def sync_transaction(self) -> Any:
        with _store_errors(), self.sync_engine.begin() as conn:
            yield conn


@contextlib.contextmanager
def _store_errors() -> Iterator[None]:
    """The sync helpers' failures to reach the store, reported as the async paths do."""
    try:
        yield
    except _UNAVAILABLE as exc:
        raise StoreUnavailableError(str(exc).splitlines()[0]) from exc


def _sqlite_executor(url: str) -> SqliteExecutor:
    path = url.split(":", 1)[1].removeprefix("///").split("?", 1)[0]
    if path in ("", "//", ":memory:"):
        # One shared in-memory database for the writer and the readers of this Database.
        name = f"file:propdev-memory-{next(_memory_names)}?mode=memory&cache=shared"
        return SqliteExecutor(name, uri=True)
    return SqliteExecutor(path)


def _sqlite_rowcount(conn: UnitConnection, sql: str, params: Mapping[str, Any]) -> int:
    assert isinstance(conn, SqliteConnection)
    return conn.execute(sql, params)


def _sqlite_execute_many(conn: UnitConnection, sql: str, rows: Sequence[Mapping[str, Any]]) -> None:
    assert isinstance(conn, SqliteConnection)
    conn.execute_many(sql, rows)


async def run(conn: AsyncConnection, sql: str, **params: Any) -> list[Row]:
    """Execute ``sql`` on an open connection and return the rows (if any)."""
    if isinstance(conn, SqliteSession | SqliteReads):
        return await conn.run_sql(sql, params)
    result = await conn.execute(_text(sql), params)
    return [dict(r) for r in result.mappings()] if result.returns_rows else []


def sync_run(conn: Connection, sql: str, **params: Any) -> list[Row]:
    result = conn.execute(_text(sql), params)
    return [dict(r) for r in result.mappings()] if result.returns_rows else []
