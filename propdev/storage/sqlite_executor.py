"""SQLite without an async driver: one writer thread, a few reader threads, plain ``sqlite3``.

Every write runs on the writer thread's one connection, so SQLite's single-writer rule holds
by construction and no write ever waits on ``SQLITE_BUSY`` from our own process. Reads run on
reader threads with their own connections (WAL: they see the last commit, never a writer's
uncommitted work).

Two ways to write:

* **A unit** (``SqliteExecutor.unit(fn)``): a synchronous function run on the writer's
  connection in one thread hop. Units queued together are **group-committed**: one
  ``BEGIN IMMEDIATE``, each unit inside its own savepoint (a unit that raises is rolled back
  alone and its caller gets the error), one ``COMMIT`` (one WAL sync), and only then is any
  caller released. So an acknowledged unit is a committed one.
* **A session** (``SqliteExecutor.session()``): an interactive transaction for async code that
  awaits between statements: the writer thread opens the transaction and runs the session's
  statements one hop each until it commits or rolls back; units wait meanwhile.

Reads go to the reader threads, except **lookups** (``SqliteExecutor.lookup(fn)``): a read of a
row or two by key, on a hot path, runs on the calling thread's own read-only connection. Such a
read costs a few microseconds, far less than the thread hop (and the handing over of the GIL
it causes); its connection never waits (``busy_timeout`` 0): when the database is busy the
lookup goes to a reader thread after all.

SQL uses ``:name`` parameters, which ``sqlite3`` understands natively (no compilation step).
``sqlite3`` errors surface as the matching ``sqlalchemy.exc`` error (``IntegrityError``,
``OperationalError``...), the ones callers already catch.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import sqlalchemy as sa

T = TypeVar("T")
Row = Mapping[str, Any]

MAX_BATCH = 128  # units committed together at most
_STOP = object()


def translate(exc: sqlite3.Error, sql: str, params: object) -> Exception:
    """The ``sqlalchemy.exc`` error SQLAlchemy itself would have raised for ``exc``."""
    kinds: list[tuple[type[sqlite3.Error], type[sa.exc.DBAPIError]]] = [
        (sqlite3.IntegrityError, sa.exc.IntegrityError),
        (sqlite3.OperationalError, sa.exc.OperationalError),
        (sqlite3.ProgrammingError, sa.exc.ProgrammingError),
        (sqlite3.InterfaceError, sa.exc.InterfaceError),
        (sqlite3.DataError, sa.exc.DataError),
        (sqlite3.NotSupportedError, sa.exc.NotSupportedError),
        (sqlite3.InternalError, sa.exc.InternalError),
        (sqlite3.DatabaseError, sa.exc.DatabaseError),
    ]
    for raw, wrapped in kinds:
        if isinstance(exc, raw):
            return wrapped(sql, params, exc)  # type: ignore[arg-type]
    return sa.exc.DBAPIError(sql, params, exc)  # type: ignore[arg-type]


class SqliteConnection:
    """A synchronous connection as units see it: ``run(sql, **params)`` returns dict rows."""

    __slots__ = ("raw",)
    dialect = "sqlite"

    def __init__(self, raw: sqlite3.Connection) -> None:
        self.raw = raw

    def run(self, sql: str, **params: Any) -> list[Row]:
        return self.run_params(sql, params)

    def run_params(self, sql: str, params: Mapping[str, Any]) -> list[Row]:
        try:
            cursor = self.raw.execute(sql, params)
            description = cursor.description
            if description is None:
                return []
            names = [d[0] for d in description]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
        except sqlite3.Error as exc:
            raise translate(exc, sql, params) from exc

    def execute(self, sql: str, params: Mapping[str, Any]) -> int:
        """Run a statement for its row count."""
        try:
            return self.raw.execute(sql, params).rowcount
        except sqlite3.Error as exc:
            raise translate(exc, sql, params) from exc

    def execute_many(self, sql: str, rows: Sequence[Mapping[str, Any]]) -> int:
        try:
            return self.raw.executemany(sql, rows).rowcount
        except sqlite3.Error as exc:
            raise translate(exc, sql, rows) from exc


def open_connection(
    path: str, *, uri: bool = False, synchronous: str = "FULL", busy_timeout_ms: int = 5000
) -> sqlite3.Connection:
    """A ``sqlite3`` connection in autocommit mode (we issue BEGIN/COMMIT) with our pragmas."""
    raw = sqlite3.connect(
        path, isolation_level=None, check_same_thread=False, uri=uri, cached_statements=512
    )
    raw.execute("PRAGMA journal_mode=WAL")
    raw.execute(f"PRAGMA synchronous={synchronous}")
    raw.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")
    raw.execute("PRAGMA foreign_keys=ON")
    return raw


_BUSY = frozenset({sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED})


def is_busy(exc: BaseException) -> bool:
    """True for SQLite's "database is busy/locked" (possibly wrapped by ``translate``)."""
    cause = exc.orig if isinstance(exc, sa.exc.DBAPIError) else exc
    code = getattr(cause, "sqlite_errorcode", None)
    return isinstance(code, int) and code & 0xFF in _BUSY


@dataclass(slots=True)
class _Job(Generic[T]):
    fn: Callable[[SqliteConnection], T]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[T]


@dataclass(slots=True)
class _Session:
    loop: asyncio.AbstractEventLoop
    started: asyncio.Future[None]
    requests: queue.SimpleQueue[tuple[str, Any, asyncio.Future[Any]]] = field(
        default_factory=queue.SimpleQueue
    )


def _settle(outcomes: list[tuple[asyncio.Future[Any], bool, Any]]) -> None:
    """On the loop: complete each future (unless its caller gave up waiting)."""
    for future, ok, value in outcomes:
        if future.cancelled():
            continue
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)


def _post(
    loop: asyncio.AbstractEventLoop, outcomes: list[tuple[asyncio.Future[Any], bool, Any]]
) -> None:
    with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is waiting any more
        loop.call_soon_threadsafe(_settle, outcomes)


class SqliteSession:
    """An open transaction on the writer thread, driven from async code a statement at a time.

    It stands in for SQLAlchemy's ``AsyncConnection`` inside ``Database.transaction()``:
    ``propdev.storage.run(conn, sql, **params)`` works on it, and so does
    ``await conn.execute(sa.text(sql), params)`` for code written against SQLAlchemy.
    """

    dialect = "sqlite"

    def __init__(self, session: _Session) -> None:
        self._session = session

    async def _ask(self, kind: str, payload: Any) -> Any:
        future: asyncio.Future[Any] = self._session.loop.create_future()
        self._session.requests.put((kind, payload, future))
        return await future

    async def run_sql(self, sql: str, params: Mapping[str, Any]) -> list[Row]:
        rows: list[Row] = await self._ask("run", (sql, params))
        return rows

    async def execute(self, statement: sa.TextClause | str, parameters: Any = None) -> CompatResult:
        """SQLAlchemy-style ``execute`` of a ``sa.text`` clause (rows, ``rowcount``)."""
        sql = statement.text if isinstance(statement, sa.TextClause) else statement
        if isinstance(parameters, list):
            count: int = await self._ask("many", (sql, parameters))
            return CompatResult([], count, returns_rows=False)
        rows, count, returns = await self._ask("result", (sql, parameters or {}))
        return CompatResult(rows, count, returns_rows=returns)


class SqliteReads:
    """Reads for async code (``Database.connect()``): each statement on a reader thread."""

    dialect = "sqlite"

    def __init__(self, executor: SqliteExecutor) -> None:
        self._executor = executor

    async def run_sql(self, sql: str, params: Mapping[str, Any]) -> list[Row]:
        return await self._executor.read(lambda conn: conn.run_params(sql, params))

    async def execute(self, statement: sa.TextClause | str, parameters: Any = None) -> CompatResult:
        sql = statement.text if isinstance(statement, sa.TextClause) else statement
        rows = await self.run_sql(sql, parameters or {})
        return CompatResult(rows, -1, returns_rows=True)


class _Mappings:
    def __init__(self, rows: list[Row]) -> None:
        self._rows = rows

    def __iter__(self) -> Any:
        return iter(self._rows)

    def first(self) -> Row | None:
        return self._rows[0] if self._rows else None

    def all(self) -> list[Row]:
        return list(self._rows)


class CompatResult:
    """The part of SQLAlchemy's ``CursorResult`` that code in this project uses."""

    def __init__(self, rows: list[Row], rowcount: int, *, returns_rows: bool) -> None:
        self._rows = rows
        self.rowcount = rowcount
        self.returns_rows = returns_rows

    def mappings(self) -> _Mappings:
        return _Mappings(self._rows)

    def first(self) -> tuple[Any, ...] | None:
        return tuple(self._rows[0].values()) if self._rows else None

    def all(self) -> list[tuple[Any, ...]]:
        return [tuple(r.values()) for r in self._rows]

    def fetchall(self) -> list[tuple[Any, ...]]:
        return self.all()

    def scalar(self) -> Any:
        row = self.first()
        return row[0] if row else None


class SqliteExecutor:
    """The writer thread and the reader threads of one SQLite database file."""

    def __init__(self, path: str, *, readers: int = 2, uri: bool = False) -> None:
        self.path = path
        self._uri = uri
        self._readers = max(1, readers)
        self._writes: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._reads: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._closed = False
        self._local = threading.local()  # each calling thread's lookup connection
        self._lookup_conns: list[sqlite3.Connection] = []
        self.commits = 0  # group commits done (a statistic for benchmarks)
        self.units = 0  # units committed

    # -- public, from the event loop --------------------------------------------------------

    async def unit(self, fn: Callable[[SqliteConnection], T]) -> T:
        """Run ``fn`` in a transaction on the writer; return once that transaction committed."""
        self._start()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._writes.put(_Job(fn, loop, future))
        return await future

    async def read(self, fn: Callable[[SqliteConnection], T]) -> T:
        """Run ``fn`` on a reader connection (autocommit: each statement sees the last commit)."""
        self._start()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._reads.put(_Job(fn, loop, future))
        return await future

    async def lookup(self, fn: Callable[[SqliteConnection], T]) -> T:
        """Run a short read by key on this thread's own connection, without a thread hop.

        For reads of a row or two through an index, on hot paths. The connection never waits
        for a lock: if the database is busy, ``fn`` runs on a reader thread instead.
        """
        self._start()
        try:
            conn: SqliteConnection | None = getattr(self._local, "conn", None)
            return fn(conn if conn is not None else self._lookup_connection())
        except (sa.exc.OperationalError, sqlite3.OperationalError) as exc:
            if not is_busy(exc):
                raise
        return await self.read(fn)

    def _lookup_connection(self) -> SqliteConnection:
        with self._lock:
            if self._closed:
                raise sa.exc.InterfaceError("SQLite executor is closed", None, RuntimeError())
            raw = open_connection(self.path, uri=self._uri, synchronous="NORMAL", busy_timeout_ms=0)
            raw.execute("PRAGMA query_only=ON")
            self._lookup_conns.append(raw)
        conn = SqliteConnection(raw)
        self._local.conn = conn
        return conn

    @contextlib.asynccontextmanager
    async def session(self) -> AsyncIterator[SqliteSession]:
        """An interactive transaction on the writer: committed on success, else rolled back."""
        self._start()
        loop = asyncio.get_running_loop()
        raw = _Session(loop, loop.create_future())
        self._writes.put(raw)
        try:
            await raw.started
        except asyncio.CancelledError:
            # The writer may start it later: make sure it ends at once.
            raw.requests.put(("rollback", None, loop.create_future()))
            raise
        conn = SqliteSession(raw)
        done = False
        try:
            yield conn
            done = True
            await conn._ask("commit", None)
        finally:
            if not done:
                # Do not await here: a cancelled caller must not be held; the writer rolls
                # back as soon as it reads this.
                raw.requests.put(("rollback", None, loop.create_future()))

    def close(self) -> None:
        """Stop the threads once the work already queued is done (blocks; call from a thread)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            threads = list(self._threads)
        if threads:
            self._writes.put(_STOP)
            for _ in range(self._readers):
                self._reads.put(_STOP)
        for thread in threads:
            thread.join()
        with self._lock:
            lookups, self._lookup_conns = self._lookup_conns, []
        for raw in lookups:
            raw.close()

    # -- threads ----------------------------------------------------------------------------

    def _start(self) -> None:
        if self._threads:
            return
        with self._lock:
            if self._closed:
                raise sa.exc.InterfaceError("SQLite executor is closed", None, RuntimeError())
            if self._threads:
                return
            # The writer opens (and so creates and migrates into WAL) the file first.
            ready = threading.Event()
            writer = threading.Thread(
                target=self._writer_loop, args=(ready,), name="sqlite-writer", daemon=True
            )
            writer.start()
            ready.wait()
            threads = [writer]
            for n in range(self._readers):
                reader = threading.Thread(
                    target=self._reader_loop, name=f"sqlite-reader-{n}", daemon=True
                )
                reader.start()
                threads.append(reader)
            self._threads = threads

    def _connect(self, synchronous: str) -> sqlite3.Connection:
        return open_connection(self.path, uri=self._uri, synchronous=synchronous)

    def _reader_loop(self) -> None:
        raw = self._connect("NORMAL")
        conn = SqliteConnection(raw)
        try:
            while True:
                job = self._reads.get()
                if job is _STOP:
                    return
                assert isinstance(job, _Job)
                try:
                    outcome = (job.future, True, job.fn(conn))
                except BaseException as exc:  # handed to the caller, who re-raises it
                    outcome = (job.future, False, exc)
                _post(job.loop, [outcome])
        finally:
            raw.close()

    def _writer_loop(self, ready: threading.Event) -> None:
        try:
            raw = self._connect("FULL")  # acknowledged means durable: the WAL is synced per commit
        finally:
            ready.set()
        conn = SqliteConnection(raw)
        held: object | None = None
        try:
            while True:
                job = held if held is not None else self._writes.get()
                held = None
                if job is _STOP:
                    return
                if isinstance(job, _Session):
                    self._run_session(raw, conn, job)
                    continue
                assert isinstance(job, _Job)
                batch: list[_Job[Any]] = [job]
                while len(batch) < MAX_BATCH:
                    try:
                        more = self._writes.get_nowait()
                    except queue.Empty:
                        break
                    if not isinstance(more, _Job):
                        held = more
                        break
                    batch.append(more)
                self._run_units(raw, conn, batch)
        finally:
            raw.close()

    def _run_units(
        self, raw: sqlite3.Connection, conn: SqliteConnection, batch: list[_Job[Any]]
    ) -> None:
        outcomes: list[tuple[_Job[Any], bool, Any]] = []
        try:
            raw.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            error = translate(exc, "BEGIN IMMEDIATE", None)
            self._deliver([(job, False, error) for job in batch])
            return
        alone = len(batch) == 1
        for job in batch:
            if not alone:
                raw.execute("SAVEPOINT unit")
            try:
                value = job.fn(conn)
            except BaseException as exc:  # handed to the caller, who re-raises it
                if not raw.in_transaction:
                    # SQLite rolled the whole transaction back (I/O error, disk full...): the
                    # units before this one are lost too. Fail them and start again.
                    outcomes = [(j, False, exc) for j, _, _ in outcomes]
                    outcomes.append((job, False, exc))
                    self._deliver(outcomes)
                    outcomes = []
                    try:
                        raw.execute("BEGIN IMMEDIATE")
                    except sqlite3.Error as again:
                        rest = batch[batch.index(job) + 1 :]
                        self._deliver([(j, False, translate(again, "BEGIN", None)) for j in rest])
                        return
                    continue
                if alone:
                    raw.execute("ROLLBACK")
                    self._deliver([(job, False, exc)])
                    return
                raw.execute("ROLLBACK TO unit")
                raw.execute("RELEASE unit")
                outcomes.append((job, False, exc))
            else:
                if not alone:
                    raw.execute("RELEASE unit")
                outcomes.append((job, True, value))
        try:
            raw.execute("COMMIT")
        except sqlite3.Error as exc:
            with contextlib.suppress(sqlite3.Error):
                raw.execute("ROLLBACK")
            error = translate(exc, "COMMIT", None)
            outcomes = [(j, False, error if ok else value) for j, ok, value in outcomes]
        else:
            self.commits += 1
            self.units += sum(1 for _, ok, _ in outcomes if ok)
        self._deliver(outcomes)

    @staticmethod
    def _deliver(outcomes: list[tuple[_Job[Any], bool, Any]]) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], bool, Any]]] = {}
        for job, ok, value in outcomes:
            by_loop.setdefault(job.loop, []).append((job.future, ok, value))
        for loop, settled in by_loop.items():
            _post(loop, settled)

    def _run_session(
        self, raw: sqlite3.Connection, conn: SqliteConnection, session: _Session
    ) -> None:
        try:
            raw.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            _post(session.loop, [(session.started, False, translate(exc, "BEGIN IMMEDIATE", None))])
            return
        _post(session.loop, [(session.started, True, None)])
        while True:
            kind, payload, future = session.requests.get()
            outcome: tuple[asyncio.Future[Any], bool, Any]
            if kind == "rollback":
                with contextlib.suppress(sqlite3.Error):
                    raw.execute("ROLLBACK")
                _post(session.loop, [(future, True, None)])
                return
            if kind == "commit":
                try:
                    raw.execute("COMMIT")
                except sqlite3.Error as exc:
                    with contextlib.suppress(sqlite3.Error):
                        raw.execute("ROLLBACK")
                    _post(session.loop, [(future, False, translate(exc, "COMMIT", None))])
                else:
                    self.commits += 1
                    _post(session.loop, [(future, True, None)])
                return
            try:
                if kind == "run":
                    sql, params = payload
                    outcome = (future, True, conn.run_params(sql, params))
                elif kind == "many":
                    sql, rows = payload
                    outcome = (future, True, conn.execute_many(sql, rows))
                else:  # "result": rows, rowcount and whether it returns rows
                    sql, params = payload
                    try:
                        cursor = raw.execute(sql, params)
                    except sqlite3.Error as exc:
                        raise translate(exc, sql, params) from exc
                    if cursor.description is None:
                        outcome = (future, True, ([], cursor.rowcount, False))
                    else:
                        names = [d[0] for d in cursor.description]
                        rows = [dict(zip(names, r, strict=True)) for r in cursor.fetchall()]
                        outcome = (future, True, (rows, cursor.rowcount, True))
            except BaseException as exc:  # handed to the caller, who re-raises it
                outcome = (future, False, exc)
            _post(session.loop, [outcome])
