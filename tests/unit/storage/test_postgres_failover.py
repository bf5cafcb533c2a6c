"""A libpq multi-host URL reaches SQLAlchemy, and a failover's errors are the store unavailable."""

from __future__ import annotations

import psycopg
import pytest
import sqlalchemy as sa
from structlog.testing import capture_logs

from propdev.storage import Database, StoreUnavailableError
from propdev.storage.db import driver_urls
from propdev.storage.postgres import sqlalchemy_url
from tests.conftest import POSTGRES_URL
from tests.support.postgres import fresh_database


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "postgresql://u:p%40w@h1:5432,h2:5433/db?target_session_attrs=read-write",
            "postgresql+psycopg://u:p%40w@/db?host=h1:5432&host=h2:5433"
            "&target_session_attrs=read-write&connect_timeout=5",
        ),
        (
            "postgres://h1,h2:6000/db?connect_timeout=2",
            "postgresql+psycopg:///db?host=h1&host=h2:6000&connect_timeout=2",
        ),
        (
            "postgresql://u@h1:5432/db?sslmode=require",
            "postgresql+psycopg://u@h1:5432/db?sslmode=require",
        ),
    ],
)
def test_a_multi_host_url_becomes_repeated_host_parameters(url: str, expected: str) -> None:
    assert sqlalchemy_url(url) == expected


def test_psycopg_is_given_libpq_host_and_port_lists() -> None:
    async_url, sync_url = driver_urls(
        "postgresql://u@10.0.0.1:5432,10.0.0.2:5433/hub?target_session_attrs=read-write"
    )
    assert async_url == sync_url
    engine = sa.create_engine(sync_url)
    _args, kwargs = engine.dialect.create_connect_args(engine.url)
    assert kwargs["host"] == "10.0.0.1,10.0.0.2" and kwargs["port"] == "5432,5433"
    assert kwargs["target_session_attrs"] == "read-write" and kwargs["dbname"] == "hub"


async def test_a_multi_host_url_finds_the_server_that_answers() -> None:
    """The first host refuses connections (nothing listens on port 1): libpq tries the next."""
    with fresh_database() as url:
        name = url.rsplit("/", 1)[1]
        server = POSTGRES_URL.removeprefix("postgresql://").rstrip("/")
        user, _, hostport = server.rpartition("@")
        multi = f"postgresql://{user}@127.0.0.1:1,{hostport}/{name}?target_session_attrs=read-write"
        db = Database(multi)
        try:
            assert await db.ping()
            assert db.sync_fetch_one("SELECT 2 AS two") == {"two": 2}
        finally:
            await db.close()


async def test_a_write_refused_as_read_only_is_the_store_unavailable_and_drops_the_pool() -> None:
    """25006, as from a server that is no longer the primary: a 503, never a 500, and the
    pool's connections are not used again (they may all lead to that server)."""
    with fresh_database() as url:
        db = Database(url)
        try:
            await db.execute("CREATE TABLE t (x INTEGER)")
            before = await db.fetch_one("SELECT pg_backend_pid() AS pid")
            with pytest.raises(StoreUnavailableError, match="25006"):
                async with db.transaction() as conn:
                    await conn.execute(sa.text("SET TRANSACTION READ ONLY"))
                    await conn.execute(sa.text("INSERT INTO t VALUES (1)"))
            with pytest.raises(StoreUnavailableError, match="25006"):
                with db.sync_transaction() as conn:
                    conn.execute(sa.text("SET TRANSACTION READ ONLY"))
                    conn.execute(sa.text("INSERT INTO t VALUES (1)"))
            after = await db.fetch_one("SELECT pg_backend_pid() AS pid")
            assert before is not None and after is not None and before["pid"] != after["pid"]
            assert await db.execute("INSERT INTO t VALUES (2)") == 1
        finally:
            await db.close()


async def test_a_read_outside_a_transaction_is_one_statement_in_autocommit() -> None:
    """``fetch_one`` sends no BEGIN before its query (its transaction starts with it); a
    transaction keeps its own, begun before its first statement."""
    with fresh_database() as url:
        db = Database(url)
        try:
            alone = "SELECT now() = statement_timestamp() AS alone"
            assert await db.fetch_one(alone) == {"alone": True}
            assert await db.lookup(alone) == {"alone": True}
            assert await db.fetch_all(alone) == [{"alone": True}]
            async with db.transaction() as conn:
                assert (await conn.execute(sa.text(alone))).scalar_one() is False
        finally:
            await db.close()


async def test_a_read_on_a_dead_pooled_connection_runs_once_more_on_a_fresh_one() -> None:
    """Every pooled read connection killed, as a primary switch does: the read finds its
    connection dead, the pool is dropped (else the retry would take the other dead one) and
    the read answers from a fresh connection; no ping at checkout."""
    with fresh_database() as url:
        db = Database(url)
        try:
            pid = "SELECT pg_backend_pid() AS pid"
            async with db.read_engine.connect() as a, db.read_engine.connect() as b:
                pooled = {(await a.execute(sa.text(pid))).scalar_one() for _ in (1,)}
                pooled.add((await b.execute(sa.text(pid))).scalar_one())
            assert len(pooled) == 2
            with psycopg.connect(url, autocommit=True) as admin:
                for backend in pooled:
                    admin.execute("SELECT pg_terminate_backend(%s, 5000)", (backend,))
            with capture_logs() as logs:
                row = await db.fetch_one(pid)
            assert row is not None and row["pid"] not in pooled
            assert [e["event"] for e in logs if e["event"] == "store_read_retried"] == [
                "store_read_retried"
            ]
            again = await db.fetch_one(pid)
            assert again is not None and again["pid"] not in pooled
        finally:
            await db.close()


async def test_a_read_whose_server_is_gone_is_the_store_unavailable() -> None:
    """No retry can help when no server answers: the store unavailable, not a server error."""
    db = Database("postgresql://postgres@127.0.0.1:1/none?connect_timeout=2")
    try:
        with pytest.raises(StoreUnavailableError):
            await db.fetch_one("SELECT 1 AS one")
        assert not await db.ping()
    finally:
        await db.close()
