"""One data-access layer over SQLite (embedded default) and PostgreSQL (cluster).

SQL is written once with ``:named`` parameters; SQLAlchemy Core adapts it to the driver.
The async engine serves the request path; a sync engine over the same URL serves code
that must run in a worker thread (the OAuth server library is synchronous).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from propdev.storage.errors import StoreUnavailableError

Row = Mapping[str, Any]


def driver_urls(url: str) -> tuple[str, str]:
    """Return (async URL, sync URL) for a ``sqlite:///`` or ``postgresql://`` URL."""
    if url.startswith("sqlite:"):
        rest = url.split(":", 1)[1]
        return f"sqlite+aiosqlite:{rest}", f"sqlite+pysqlite:{rest}"
    if url.startswith(("postgresql:", "postgres:")):
        rest = url.split(":", 1)[1]
        return f"postgresql+psycopg:{rest}", f"postgresql+psycopg:{rest}"
    raise ValueError(f"unsupported database URL: {url!r}")


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


class Database:
    """An async engine plus a lazily made sync engine over the same database."""

    def __init__(self, url: str, *, pool_size: int = 10) -> None:
        self.url = url
        self.dialect = "sqlite" if url.startswith("sqlite") else "postgresql"
        async_url, self._sync_url = driver_urls(url)
        if self.dialect == "sqlite" and url.startswith("sqlite:///"):
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        kwargs: dict[str, Any] = {}
        if self.dialect == "postgresql":
            kwargs = {"pool_size": pool_size, "max_overflow": pool_size, "pool_pre_ping": True}
        self.engine: AsyncEngine = create_async_engine(async_url, **kwargs)
        if self.dialect == "sqlite":
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
        self._sync_engine: Engine | None = None
        # SQLite allows one writer at a time; serialising writers here avoids busy retries.
        self.write_lock = asyncio.Lock() if self.dialect == "sqlite" else None

    @property
    def sync_engine(self) -> Engine:
        if self._sync_engine is None:
            self._sync_engine = sa.create_engine(self._sync_url, pool_pre_ping=True)
            if self.dialect == "sqlite":
                event.listen(self._sync_engine, "connect", _sqlite_pragmas)
        return self._sync_engine

    async def close(self) -> None:
        await self.engine.dispose()
        if self._sync_engine is not None:
            self._sync_engine.dispose()

    @contextlib.asynccontextmanager
    async def connect(self) -> AsyncIterator[AsyncConnection]:
        """A connection for reads (autocommit semantics are not relied upon)."""
        try:
            async with self.engine.connect() as conn:
                yield conn
        except (sa.exc.OperationalError, sa.exc.InterfaceError, OSError) as exc:
            raise StoreUnavailableError(str(exc).splitlines()[0]) from exc

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        """A connection inside one transaction, committed on success."""
        lock = self.write_lock
        try:
            if lock is not None:
                await lock.acquire()
            try:
                async with self.engine.begin() as conn:
                    yield conn
            finally:
                if lock is not None:
                    lock.release()
        except (sa.exc.OperationalError, sa.exc.InterfaceError, OSError) as exc:
            raise StoreUnavailableError(str(exc).splitlines()[0]) from exc

    async def fetch_all(self, sql: str, **params: Any) -> list[Row]:
        async with self.connect() as conn:
            result = await conn.execute(sa.text(sql), params)
            return [dict(r) for r in result.mappings()]

    async def fetch_one(self, sql: str, **params: Any) -> Row | None:
        async with self.connect() as conn:
            result = await conn.execute(sa.text(sql), params)
            row = result.mappings().first()
            return dict(row) if row is not None else None

    async def execute(self, sql: str, **params: Any) -> int:
        async with self.transaction() as conn:
            result = await conn.execute(sa.text(sql), params)
            return result.rowcount

    async def execute_many(self, sql: str, rows: Sequence[Mapping[str, Any]]) -> None:
        if not rows:
            return
        async with self.transaction() as conn:
            await conn.execute(sa.text(sql), list(rows))

    async def ping(self) -> bool:
        try:
            await self.fetch_one("SELECT 1 AS ok")
        except StoreUnavailableError:
            return False
        return True

    # -- sync helpers, for worker threads only ------------------------------------------

    def sync_fetch_one(self, sql: str, **params: Any) -> Row | None:
        with self.sync_engine.connect() as conn:
            row = conn.execute(sa.text(sql), params).mappings().first()
            return dict(row) if row is not None else None

    def sync_execute(self, sql: str, **params: Any) -> int:
        with self.sync_engine.begin() as conn:
            return conn.execute(sa.text(sql), params).rowcount

    @contextlib.contextmanager
    def sync_transaction(self) -> Any:
        with self.sync_engine.begin() as conn:
            yield conn


async def run(conn: AsyncConnection, sql: str, **params: Any) -> list[Row]:
    """Execute ``sql`` on an open connection and return the rows (if any)."""
    result = await conn.execute(sa.text(sql), params)
    return [dict(r) for r in result.mappings()] if result.returns_rows else []


def sync_run(conn: Connection, sql: str, **params: Any) -> list[Row]:
    result = conn.execute(sa.text(sql), params)
    return [dict(r) for r in result.mappings()] if result.returns_rows else []
