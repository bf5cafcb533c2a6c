"""In-process benchmarks against a baseline measured in the same run, rounds interleaved.

    .venv/bin/python bench/bench_micro.py [--rounds 5] [--quick] [--json PATH]

* G7  audit seal+open as performance.md states it: a 1 KiB audit entry hashed into the chain
  (``audit.entry_hash``, msgpack) and sealed then opened by the product's ``Vault``
  (AES-256-GCM under a per-value HKDF subkey) vs raw AES-256-GCM encrypt+decrypt of 1 KiB
  (cached ``AESGCM``); beside it, as info (no goal): G7h the hash alone, and G7d the durable
  append (``audit.sync_append`` in its own ``Database.unit``, SQLite WAL ``synchronous=FULL``, 64
  concurrent units group-committed), a disk-bound figure that G7b sets against raw sqlite3;
* G7b audit commit rate with durability on (SQLite WAL, ``synchronous=FULL``): 64 concurrent
  opens' commits, each ``Database.unit`` = command + 4 steps + audit entry + event (group
  commit) vs the same durability with raw ``sqlite3``, one INSERT + COMMIT per entry, one thread;
* G7p the same 64 concurrent opens' units on PostgreSQL: group-committed by ``Database.unit``
  (``propdev.storage.pg_units``) vs one transaction per unit in a thread, the design before
  it (skipped when no PostgreSQL answers on ``--postgres-url``);
* G10 event bus: ``RedisBus.publish`` (the node's bus in a cluster, pipelined writer) of N
  events until Redis has them all vs ``redis.asyncio`` PUBLISH pipelined x100 (skipped when no
  Redis answers on ``--redis-url``).

Rounds interleave baseline and candidate (``bench.common.interleave``, >= 3); the ratio is
taken per round, its median and spread reported.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import sqlite3
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from bench.common import Goal, ainterleave, figure, interleave, print_figures
from propdev.storage import Database, UnitConnection, audit, commands, events, migrate
from propdev.storage.audit import AuditRecord

RECORD = AuditRecord(
    at=1_700_000_000.123,
    actor="user:7d0c5b8e-4a53-4a5c-9b1e-0d6c2f6b1a11",
    action="open",
    access_point_id="ap-entrance-a",
    decision="granted",
    reason="",
    command_id="3f1f8f5e-1b7a-4f5e-9d55-8e2b1c0a9f00",
)


def rate(fn: Callable[[], object], seconds: float) -> float:
    """Calls per second of ``fn`` over about ``seconds`` (batches of 1000)."""
    done = 0
    start = time.perf_counter()
    deadline = start + seconds
    while time.perf_counter() < deadline:
        for _ in range(1000):
            fn()
        done += 1000
    return done / (time.perf_counter() - start)


def _aes_rate(seconds: float) -> Callable[[], float]:
    aes = AESGCM(AESGCM.generate_key(bit_length=256))
    nonce = os.urandom(12)
    kib = os.urandom(1024)

    def raw() -> None:
        aes.decrypt(nonce, aes.encrypt(nonce, kib, None), None)

    return lambda: rate(raw, seconds)


def audit_hash(rounds: int, seconds: float) -> dict[str, Any]:
    """G7h (info): the chain's hash alone, what G7 measured before it measured the append."""
    prev = "0" * 64

    def chain() -> None:
        audit.entry_hash(prev, RECORD)

    runs = interleave(rounds, {"aes": _aes_rate(seconds), "hash": lambda: rate(chain, seconds)})
    return figure(
        "G7h",
        "  the hash alone (audit.entry_hash), no goal",
        runs.results["hash"],
        runs.results["aes"],
        "AES-256-GCM enc+dec 1 KiB",
        "ops/s",
        None,
    )


async def _appends_rate(db: Database, seconds: float, concurrency: int) -> tuple[float, int]:
    """Audit appends/s, each in its own durable unit, and how many raised."""
    done = failed = 0
    deadline = time.perf_counter() + seconds

    async def worker(w: int) -> None:
        nonlocal done, failed
        n = w
        while time.perf_counter() < deadline:
            record = AuditRecord(time.time(), "user:bench", "open", f"ap-{n % 5}", "granted")
            try:
                await db.unit(lambda conn, r=record: audit.sync_append(conn, r))
            except Exception:  # counted: a figure with errors fails
                failed += 1
            else:
                done += 1
            n += concurrency

    start = time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(concurrency)))
    return done / (time.perf_counter() - start), failed


def audit_seal(rounds: int, seconds: float) -> dict[str, Any]:
    """G7: a 1 KiB audit entry chained and sealed+opened by the Vault vs raw AES-GCM of 1 KiB."""
    from propdev.security import Vault

    vault = Vault.for_tests()
    entry = dataclasses.replace(RECORD, reason="r" * 1024)  # 1 KiB, as the baseline's payload
    prev = "0" * 64
    body = json.dumps(dataclasses.asdict(entry))
    failed = 0

    def seal_and_open() -> None:
        nonlocal failed
        audit.entry_hash(prev, entry)
        sealed = vault.seal(body, table="audit", column="entry", row_id="1")
        if vault.open(sealed, table="audit", column="entry", row_id="1") != body:
            failed += 1

    runs = interleave(
        rounds, {"aes": _aes_rate(seconds), "seal": lambda: rate(seal_and_open, seconds)}
    )
    return figure(
        "G7",
        "audit entry chained + Vault seal+open (AES-256-GCM, 1 KiB)",
        runs.results["seal"],
        runs.results["aes"],
        "AES-256-GCM enc+dec 1 KiB",
        "ops/s",
        Goal(0.4),
        errors=failed,
    )


async def audit_append(rounds: int, seconds: float) -> dict[str, Any]:
    """G7d (info): the durable append (hash chain + INSERT, committed) vs raw AES-GCM."""
    aes = _aes_rate(seconds)
    failed: list[int] = []
    with tempfile.TemporaryDirectory(prefix="propdev-bench-append-", dir=_disk_tmp()) as tmp:
        db = Database(f"sqlite:///{tmp}/audit.db")
        await migrate(db)
        await _appends_rate(db, 0.2, 64)  # warm the writer thread and the chain

        async def appends() -> float:
            per_s, errors = await _appends_rate(db, seconds, 64)
            failed.append(errors)
            return per_s

        async def raw() -> float:
            return aes()

        runs = await ainterleave(rounds, {"aes": raw, "append": appends})
        ok, checked, _ = await audit.AuditLog(db).verify()
        await db.close()
    chain_errors = 0 if ok and checked > 0 else 1
    return figure(
        "G7d",
        "  durable audit append (Database.unit, 64 concurrent), no goal",
        runs.results["append"],
        runs.results["aes"],
        "AES-256-GCM enc+dec 1 KiB",
        "appends/s",
        None,
        errors=sum(failed) + chain_errors,
        chain_ok=bool(ok and checked > 0),
    )


def _open_commit(n: int) -> Callable[[UnitConnection], None]:
    """What DeviceActor._decide writes for one granted open."""
    command_id = str(uuid.uuid4())
    user_id = f"user-{n % 3}"

    def unit(conn: UnitConnection) -> None:
        now = time.time()
        commands.sync_put_command(
            conn,
            command_id=command_id,
            access_point_id=f"ap-{n % 5}",
            user_id=user_id,
            status="confirmed",
            at=now,
            vendor_command_id=f"v-{n}",
        )
        steps = [(s, now, {}) for s in ("requested", "decided", "accepted", "confirmed")]
        commands.sync_add_steps(conn, command_id, steps)
        audit.sync_append(
            conn,
            AuditRecord(now, f"user:{user_id}", "open", f"ap-{n % 5}", "granted", "", command_id),
        )
        events.sync_append(
            conn,
            user_id=user_id,
            type="access.granted",
            access_point_id=f"ap-{n % 5}",
            command_id=command_id,
            occurred_at=now,
        )

    return unit


async def _units_rate(
    db: Database,
    seconds: float,
    concurrency: int,
    unit: Callable[[Callable[[UnitConnection], None]], Awaitable[None]] | None = None,
) -> float:
    run_unit = db.unit if unit is None else unit
    done = 0
    deadline = time.perf_counter() + seconds

    async def worker(w: int) -> None:
        nonlocal done
        n = w
        while time.perf_counter() < deadline:
            await run_unit(_open_commit(n))
            n += concurrency
            done += 1

    start = time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(concurrency)))
    return done / (time.perf_counter() - start)


def _raw_rate(path: str, seconds: float) -> float:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("CREATE TABLE IF NOT EXISTS raw (id INTEGER PRIMARY KEY, body TEXT)")
    body = json.dumps(RECORD.__repr__())
    done = 0
    start = time.perf_counter()
    deadline = start + seconds
    while time.perf_counter() < deadline:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO raw (body) VALUES (?)", (body,))
        conn.execute("COMMIT")
        done += 1
    conn.close()
    return done / (time.perf_counter() - start)


async def audit_commits(rounds: int, seconds: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="propdev-bench-audit-", dir=_disk_tmp()) as tmp:
        db = Database(f"sqlite:///{tmp}/audit.db")
        await migrate(db)

        async def raw() -> float:
            return await asyncio.to_thread(_raw_rate, f"{tmp}/raw.db", seconds)

        runs = await ainterleave(
            rounds, {"raw": raw, "units": lambda: _units_rate(db, seconds, 64)}
        )
        executor = db._sqlite
        per_commit = executor.units / executor.commits if executor and executor.commits else None
        ok, checked, _ = await audit.AuditLog(db).verify()
        await db.close()
    return figure(
        "G7b",
        "open commits/s, durable (64 concurrent units, group commit)",
        runs.results["units"],
        runs.results["raw"],
        "raw sqlite3 INSERT+COMMIT/s, same durability",
        "commits/s",
        Goal(1.0),
        errors=0 if ok and checked > 0 else 1,  # a broken chain is an error
        units_per_commit=per_commit,
        chain_ok=ok and checked > 0,
    )


async def pg_commits(rounds: int, seconds: float, server: str) -> dict[str, Any] | None:
    """G7p: 64 concurrent opens' units on PostgreSQL, group-committed by ``Database.unit``'s
    writer (``propdev.storage.pg_units``) vs the design before it, each unit its own
    transaction on the sync engine in a default-executor thread; None without a server."""
    import psycopg

    from propdev.storage.db import _SaUnitConnection
    from tests.support.postgres import fresh_database

    try:
        with psycopg.connect(server + "postgres", connect_timeout=2):
            pass
    except psycopg.Error:
        return None
    with fresh_database(server) as url:
        db = Database(url)
        await migrate(db)

        def one_transaction(fn: Callable[[UnitConnection], None]) -> None:
            with db.sync_engine.begin() as conn:
                fn(_SaUnitConnection(conn))

        async def per_unit(fn: Callable[[UnitConnection], None]) -> None:
            await asyncio.to_thread(one_transaction, fn)

        runs = await ainterleave(
            rounds,
            {
                "per_unit": lambda: _units_rate(db, seconds, 64, per_unit),
                "grouped": lambda: _units_rate(db, seconds, 64),
            },
        )
        writer = db._pg_units
        per_commit = writer.units / writer.commits if writer.commits else None
        ok, checked, _ = await audit.AuditLog(db).verify()
        await db.close()
    return figure(
        "G7p",
        "open commits/s on PostgreSQL (64 concurrent units, group commit)",
        runs.results["grouped"],
        runs.results["per_unit"],
        "one transaction per unit in a thread (before)",
        "commits/s",
        Goal(1.0),
        errors=0 if ok and checked > 0 else 1,  # a broken chain is an error
        units_per_commit=per_commit,
        chain_ok=ok and checked > 0,
    )


def _disk_tmp() -> str | None:
    """A temporary directory on the disk the node uses (``/tmp`` may be a tmpfs)."""
    here = Path(__file__).resolve().parents[1] / "var"
    return str(here) if here.is_dir() else None


async def bus_publish(rounds: int, count: int, url: str) -> dict[str, Any] | None:
    from redis.asyncio import Redis

    from propdev.registry.pipeline import Pipeliner
    from propdev.registry.redis_bus import RedisBus

    redis = Redis.from_url(url, socket_connect_timeout=1.0)
    try:
        await redis.ping()
    except Exception:  # no Redis: the figure is skipped, and the table says so
        await redis.aclose()
        return None
    message = {"id": 1, "type": "access.granted", "access_point_id": "ap-1", "data": {}}
    channel = f"bench:{uuid.uuid4()}"

    async def bare() -> float:
        from propdev.registry.wire import pack

        start = time.perf_counter()
        for first in range(0, count, 100):
            pipe = redis.pipeline(transaction=False)
            for _ in range(min(100, count - first)):
                pipe.publish(channel, pack({"o": "bench", "m": message}))
            await pipe.execute()
        return count / (time.perf_counter() - start)

    async def ours() -> tuple[float, int]:
        pipeliner = Pipeliner(redis)
        bus = RedisBus(redis, pipeliner, namespace="{bench}", node_id="bench")
        pipeliner.start()
        start = time.perf_counter()
        for n in range(count):
            await bus.publish(channel, message)
            if n % 1000 == 999:
                await asyncio.sleep(0)  # a node's loop does other work between events
        await pipeliner.send("PING")  # sent after every queued PUBLISH, in order
        elapsed = time.perf_counter() - start
        dropped = pipeliner.dropped
        await pipeliner.close()
        return (count - dropped) / elapsed, dropped  # events that reached Redis

    dropped: list[int] = []

    async def counted() -> float:
        per_s, lost = await ours()
        dropped.append(lost)
        return per_s

    runs = await ainterleave(rounds, {"bare": bare, "ours": counted})
    await redis.aclose()
    return figure(
        "G10",
        "RedisBus.publish (pipelined writer), events/s delivered to Redis",
        runs.results["ours"],
        runs.results["bare"],
        "redis.asyncio PUBLISH pipelined x100",
        "msg/s",
        Goal(0.5),
        errors=sum(dropped),  # an event that never reached Redis
        attempts=count * rounds,
    )


async def main(args: argparse.Namespace) -> dict[str, Any]:
    seconds = 0.5 if args.quick else 1.0
    figures = [
        audit_seal(args.rounds, seconds),
        audit_hash(args.rounds, seconds),
        await audit_append(args.rounds, seconds),
    ]
    figures.append(await audit_commits(args.rounds, 1.0 if args.quick else 2.0))
    pg = await pg_commits(args.rounds, 1.0 if args.quick else 2.0, args.postgres_url)
    if pg is not None:
        figures.append(pg)
    bus = await bus_publish(args.rounds, 20_000 if args.quick else 50_000, args.redis_url)
    if bus is not None:
        figures.append(bus)
    return {
        "benchmark": "micro",
        "python": sys.version.split()[0],
        "rounds": args.rounds,
        "loadavg": os.getloadavg(),
        "figures": figures,
        "skipped": ([] if bus is not None else ["G10: no Redis at " + args.redis_url])
        + ([] if pg is not None else ["G7p: no PostgreSQL at " + args.postgres_url]),
    }


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="at least 3")
    parser.add_argument("--quick", action="store_true", help="3 rounds, shorter windows")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/15")
    parser.add_argument(
        "--postgres-url",
        default="postgresql://postgres@127.0.0.1:5432/",
        help="a server URL ending with /; G7p makes and drops its own database there",
    )
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if args.quick:
        args.rounds = 3
    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(30))
    result = asyncio.run(main(args))
    print_figures(result["figures"])
    for s in result["skipped"]:
        print("skipped:", s)
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    cli()
