"""Group commit of ``Database.unit`` on PostgreSQL: the units queued together share a commit.

A writer thread takes every unit waiting in the queue (up to ``MAX_BATCH``), runs them in one
transaction on one pooled connection of its engine, each inside its own savepoint (a unit
that raises is rolled back alone and its caller gets the error; the savepoints are released
by the commit, not one by one), commits once (one round trip, one WAL flush) and only then
releases the callers: an acknowledged unit is a committed one, as with one transaction per
unit. A lone unit runs without a savepoint.

There are ``writers`` such threads on the one queue (4 by default): a unit's statements are
round trips run one after the other, so a single writer would cap a node at one unit's
latency at a time against a distant server; several keep that overlap (as the default
executor's threads did) and each still groups what queued while it was busy.

Before, each unit was its own transaction in a thread of the default executor: a thread hop,
a pool check-out and a commit per door open. The SQLite path has done the same since
``propdev.storage.sqlite_executor`` (its writer thread); this is its PostgreSQL counterpart.
A failed commit (the server gone, a failover) fails every unit of the batch with the error:
none of them was acknowledged, each caller sees the store unavailable.

A pooled connection is not pinged when a writer takes it (a round trip per transaction):
the writers have an engine of their own without ``pool_pre_ping``. A connection that a
primary switch killed fails on the batch's first statement; SQLAlchemy then invalidates the
pool, as the ping would have, and the writer runs the batch once more on a fresh connection
(``reconnected``). Only then: nothing of the batch reached a live server (no statement had
succeeded on that connection), so nothing can be doubled; a connection that dies later, or
at the commit, fails its batch as before.

Locks and batches. A lock a unit takes is held until its batch commits, and the writers'
batches run side by side (in this process and on other nodes): if every unit waited for its
locks, two batches taking two audit chains' locks in opposite orders would deadlock
(PostgreSQL aborts one after ``deadlock_timeout``, failing all its units), and a batch would
keep the locks of its first units while a later one waits for another batch's commit. So a
unit waits for a lock only when it is the first of its transaction (``may_wait``: no other
unit's lock is held); a later one tries its lock and, if it is taken, raises ``LockBusy``
(``propdev.storage.db.unit_lock`` does both): it is rolled back to its savepoint and run
again at the head of the writer's next transaction, where it may wait. A transaction thus
waits only before it holds another unit's lock, and batching adds no wait-for cycle.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy.engine import Connection, Engine

T = TypeVar("T")
U = TypeVar("U")

MAX_BATCH = 128  # units committed together at most
# A unit's savepoint, never released (RELEASE would be a round trip per unit for nothing: the
# commit releases them all). Each nests in the previous one under the same name, and
# ROLLBACK TO names the newest: the failing unit's work only, its predecessors' kept.
_SAVEPOINT = "SAVEPOINT unit"
_ROLLBACK_TO = "ROLLBACK TO SAVEPOINT unit"
_STOP = object()
_state = threading.local()  # the unit running in this thread: the first of its transaction?


class LockBusy(Exception):
    """A unit's lock is held elsewhere and its transaction holds other units' locks: the
    writer retries the unit first in its next transaction (never seen by the caller)."""


def may_wait() -> bool:
    """Whether the unit running in this thread may wait for a lock: it is the first (or the
    only) unit of its transaction, or it runs outside ``PgUnits``."""
    return bool(getattr(_state, "first", True))


@dataclass(slots=True)
class _Job(Generic[T]):
    fn: Callable[[Any], T]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[T]


def _settle(outcomes: list[tuple[asyncio.Future[Any], bool, Any]]) -> None:
    for future, ok, value in outcomes:
        if future.done():
            continue  # the caller gave up (cancelled)
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)


class PgUnits:
    """The writer thread of one PostgreSQL database's units (started on first use)."""

    def __init__(
        self,
        engine: Callable[[], Engine],
        wrap: Callable[[Connection], Any],
        *,
        writers: int = 4,
    ) -> None:
        self._engine = engine  # the sync engine, made lazily by the Database
        self._wrap = wrap  # a SQLAlchemy connection -> what a unit's fn is given
        self._writers = max(1, writers)
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self.commits = 0  # transactions committed (a statistic for benchmarks and tests)
        self.units = 0  # units committed
        self.retried = 0  # units put off to the next transaction by a busy lock (LockBusy)
        self.reconnected = 0  # batches run again after a dead pooled connection

    async def unit(self, fn: Callable[[Any], U]) -> U:
        """Run ``fn`` in a transaction on the writer; return once that transaction committed."""
        self._start()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[U] = loop.create_future()
        self._queue.put(_Job(fn, loop, future))
        return await future

    def close(self) -> None:
        """Stop the writers after the units queued so far (blocking: call it in a thread)."""
        with self._lock:
            threads, self._threads = self._threads, []
        for _ in threads:
            self._queue.put(_STOP)
        for thread in threads:
            thread.join()

    def _start(self) -> None:
        if self._threads:
            return
        with self._lock:
            if not self._threads:
                self._threads = [
                    threading.Thread(target=self._writer_loop, name=f"pg-units-{n}", daemon=True)
                    for n in range(self._writers)
                ]
                for thread in self._threads:
                    thread.start()

    def _writer_loop(self) -> None:
        retry: list[_Job[Any]] = []  # units whose lock was busy: first in the next batch
        while True:
            if retry:
                batch, retry = retry, []
            else:
                job = self._queue.get()
                if job is _STOP:
                    return
                assert isinstance(job, _Job)
                batch = [job]
            stop = False
            while len(batch) < MAX_BATCH:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is _STOP:
                    stop = True
                    break
                assert isinstance(more, _Job)
                batch.append(more)
            outcomes, retry = self._run(batch)
            self._deliver(outcomes)
            if stop:
                while retry:  # the units put off still run before the writer stops
                    outcomes, retry = self._run(retry)
                    self._deliver(outcomes)
                return

    def _run(
        self, batch: list[_Job[Any]], *, again: bool = True
    ) -> tuple[list[tuple[_Job[Any], bool, Any]], list[_Job[Any]]]:
        """Run ``batch`` in one transaction: (the outcomes of its units, those put off).
        ``again``: once more on a fresh connection if the pooled one was dead."""
        outcomes: list[tuple[_Job[Any], bool, Any]] = []
        retry: list[_Job[Any]] = []
        dead_on_arrival = False
        try:
            with self._engine().connect() as conn:
                transaction = conn.begin()
                unit_conn: Any = None
                try:
                    unit_conn = self._wrap(conn)
                    alone = len(batch) == 1
                    for index, job in enumerate(batch):
                        _state.first = index == 0
                        if alone:
                            outcomes.append((job, True, job.fn(unit_conn)))
                            continue
                        conn.exec_driver_sql(_SAVEPOINT)
                        try:
                            value = job.fn(unit_conn)
                        except LockBusy:  # only a later unit: the first one waits
                            conn.exec_driver_sql(_ROLLBACK_TO)
                            retry.append(job)
                        except BaseException as exc:  # handed to its caller, who re-raises it
                            conn.exec_driver_sql(_ROLLBACK_TO)
                            outcomes.append((job, False, exc))
                        else:
                            outcomes.append((job, True, value))
                    transaction.commit()
                except BaseException:
                    dead_on_arrival = conn.invalidated and not getattr(unit_conn, "statements", 0)
                    with contextlib.suppress(Exception):
                        transaction.rollback()
                    raise
                finally:
                    _state.first = True
        except BaseException as exc:  # the batch's transaction failed: nothing of it committed
            if dead_on_arrival and again:  # the pool is invalidated: a fresh connection
                self.reconnected += 1
                return self._run(batch, again=False)
            own = {id(job): value for job, ok, value in outcomes if not ok}
            return [(job, False, own.get(id(job), exc)) for job in batch], []
        self.commits += 1
        self.units += sum(1 for _, ok, _ in outcomes if ok)
        self.retried += len(retry)
        return outcomes, retry

    @staticmethod
    def _deliver(outcomes: list[tuple[_Job[Any], bool, Any]]) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], bool, Any]]] = {}
        for job, ok, value in outcomes:
            by_loop.setdefault(job.loop, []).append((job.future, ok, value))
        for loop, settled in by_loop.items():
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits
                loop.call_soon_threadsafe(_settle, settled)
