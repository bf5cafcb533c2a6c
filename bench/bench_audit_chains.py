"""Audit appends per second on PostgreSQL, 1, 2 and 4 writer processes standing for nodes.

    .venv/bin/python bench/bench_audit_chains.py [--rounds 5] [--duration 5] [--tasks 4]
        [--quick] [--json PATH]

**A writer is a node.** Each writer is its own process with its own ``Database`` (the node's
defaults: units group-committed by 4 writer threads, ``propdev.storage.pg_units``) and its
logging configured as a node's (``configure_logging``, JSON; the audit stream each append
writes goes to ``/dev/null``). It runs ``--tasks`` concurrent appends (``audit.sync_append``
in a ``Database.unit``, as the opening pipeline writes them) for ``--duration`` seconds, for
the doors of its own shards (writer *i* of *n* holds the shards ``s`` with ``s % n == i``,
as a node of a cluster of *n* holds its share; a door's opens are one at a time, its device
actor's). **The load**: 4 appends in flight per writer by default, one per units writer
thread of the node, i.e. a node whose opens each wait for their own commit (the WAL flush)
rather than queue behind the node's CPU; more in flight only batches more per commit. The
load per writer is the same in every configuration, so *n* writers offer *n* times one
node's load, as *n* nodes do.

Writers start together (each warms up for 0.5 s, reports ready, then all are told to go) and
the appends all of them committed in the window make the figure. The audit table is emptied
before each step and every chain verified after it (a broken chain or a failed append is an
error).

* **A2** appends/s with 2 writers vs 1 writer, chains per shard (issue 13's goal: >= 1.7);
* **A4** 4 writers vs 1 writer, chains per shard (info);
* **A2g / A4g** 2 (4) writers on chains per shard vs 2 (4) writers on the old global chain,
  the same load: one advisory lock, the global last hash, replayed as before schema 17 (info);
* **A2o** 2 writers vs 1 on the old global chain (info): what serialisation looks like.

**CPU beside every figure**, per configuration (median of the rounds): the writers' CPU per
append (all their threads, ``/proc/<pid>/stat``), PostgreSQL's (the backends serving this
database plus the WAL writer), the machine's busy share of its cores (``/proc/stat``) and what
other processes took of it, and the advisory-lock waits (``pg_stat_activity`` sampled every
50 ms: backends of this database waiting on ``Lock:advisory``, on average). When the machine's
busy share nears 100 % the figure is the machine's, not the locking's: more writers cannot add
throughput whatever the locking (read the ``machine`` column before the ratio).

Rounds interleave every configuration (``bench.common.interleave``, >= 3). Not pinned: the
writers and PostgreSQL share the machine's two cores (ratios, not absolute figures).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psycopg

from bench.common import (
    Goal,
    figure,
    interleave,
    machine_busy_seconds,
    print_figures,
    process_cpu_seconds,
    render_table,
    write_json,
)
from propdev.registry import SHARDS, shard_of
from propdev.storage import Database, UnitConnection, audit, migrate
from propdev.storage.audit import GENESIS, AuditLog, AuditRecord
from tests.support.postgres import fresh_database

SCALE_GOAL = 1.7  # issue 13: two nodes' appends at least 1.7 times one node's
DOORS = [f"door-{n}" for n in range(4 * SHARDS)]
WARM_UP = 0.5  # seconds each writer appends before it reports ready (its connections made)
SAMPLE_EVERY = 0.05  # seconds between two looks at pg_stat_activity
PG_SHARED = ("walwriter",)  # PostgreSQL processes serving every database, counted too


def doors_of(writer: int, writers: int) -> list[str]:
    return [d for d in DOORS if shard_of(d) % writers == writer]


def global_append(conn: UnitConnection, record: AuditRecord) -> None:
    """An append as it was before chains: one global lock, the global last hash, chain 0."""
    conn.run("SELECT pg_advisory_xact_lock(:k)", k=audit._LOCK_KEY)
    last = conn.run("SELECT hash FROM audit ORDER BY id DESC LIMIT 1")
    params = audit._insert_params(replace(record, chain=0), last[0]["hash"] if last else GENESIS)
    conn.run(audit._INSERT, **params)


async def write(url: str, doors: list[str], tasks: int, seconds: float, old: bool) -> None:
    """One writer (a node): warm up, ``ready <appends>``, wait for ``go``, append for
    ``seconds`` from ``tasks`` concurrent units, print the number committed, wait for
    ``close``, print ``retried <units put off by a busy chain lock>``."""
    db = Database(url, pool_size=tasks)
    append = global_append if old else audit.sync_append
    done = 0

    async def worker(k: int, deadline: float) -> None:
        nonlocal done
        n = 0
        while time.perf_counter() < deadline:
            door = doors[(k + n * tasks) % len(doors)]
            record = AuditRecord(time.time(), f"user:w{k}", "open", door, "granted")
            await db.unit(lambda conn, r=record: append(conn, r))
            n += 1
            done += 1

    async def window(seconds: float) -> int:
        nonlocal done
        done = 0
        deadline = time.perf_counter() + seconds
        await asyncio.gather(*(worker(k, deadline) for k in range(tasks)))
        return done

    try:
        print("ready", await window(WARM_UP), flush=True)
        await asyncio.to_thread(sys.stdin.readline)  # go
        print(await window(seconds), flush=True)
        await asyncio.to_thread(sys.stdin.readline)  # close (CPU read while still open)
        print("retried", db._pg_units.retried, flush=True)
    finally:
        await db.close()


@dataclass
class Step:
    """One configuration's run: throughput, errors and where the CPU went."""

    rate: float  # appends/s of all writers together
    errors: int
    writer_ms: float  # writers' CPU per append, all threads
    pg_ms: float  # PostgreSQL's CPU per append (this database's backends + WAL writer)
    machine: float  # busy share of the machine's cores in the window (0-1)
    other: float  # of which other processes (0-1 of the machine)
    lock_waits: float  # backends waiting on an advisory lock, on average
    retried: int  # units put off to their writer's next transaction by a busy chain lock


def _pg_pids(admin: str, dbname: str) -> list[int]:
    with psycopg.connect(admin, autocommit=True) as conn:
        rows = conn.execute("SELECT pid, datname, backend_type FROM pg_stat_activity").fetchall()
    return [pid for pid, db, kind in rows if db == dbname or kind in PG_SHARED]


def _cpu(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            total += process_cpu_seconds(pid)
        except OSError:  # ended meanwhile (another database's backend)
            continue
    return total


class _LockWaits:
    """Samples ``pg_stat_activity`` in a thread: backends of ``dbname`` on ``Lock:advisory``."""

    def __init__(self, admin: str, dbname: str) -> None:
        self.admin, self.dbname = admin, dbname
        self.samples = self.waiting = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> _LockWaits:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        sql = (
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s "
            "AND wait_event_type = 'Lock' AND wait_event = 'advisory'"
        )
        with psycopg.connect(self.admin, autocommit=True) as conn:
            while not self._stop.wait(SAMPLE_EVERY):
                row = conn.execute(sql, (self.dbname,)).fetchone()
                self.waiting += int(row[0]) if row else 0
                self.samples += 1

    @property
    def average(self) -> float:
        return self.waiting / self.samples if self.samples else 0.0


def step(url: str, writers: int, tasks: int, seconds: float, old: bool) -> Step:
    """One configuration, every writer its own process."""
    db_reset(url)
    base, dbname = url.rsplit("/", 1)
    admin = f"{base}/postgres"
    mode = "old" if old else "chains"
    argv = [sys.executable, __file__, "--writer", url]
    procs = [
        subprocess.Popen(
            [*argv, *map(str, (i, writers, tasks, seconds)), mode],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for i in range(writers)
    ]
    errors, warm = 0, 0
    try:
        for p in procs:
            assert p.stdout is not None
            word, count = p.stdout.readline().split()
            assert word == "ready", word
            warm += int(count)
        pg = _pg_pids(admin, dbname)
        pids = [p.pid for p in procs]
        cpu0, pg0, busy0 = _cpu(pids), _cpu(pg), machine_busy_seconds()
        t0 = time.perf_counter()
        with _LockWaits(admin, dbname) as waits:
            for p in procs:
                assert p.stdin is not None
                p.stdin.write("go\n")
                p.stdin.flush()
            counts = []
            for p in procs:
                assert p.stdout is not None
                counts.append(int(p.stdout.readline()))
        elapsed = time.perf_counter() - t0
        cpu1, pg1, busy1 = _cpu(pids), _cpu(pg), machine_busy_seconds()
        retried = 0
        for p in procs:
            out, _ = p.communicate("close\n", timeout=120)
            if p.returncode != 0:
                errors += 1
            retried += int(out.split()[-1]) if out.startswith("retried") else 0
    except (AssertionError, ValueError):  # a writer failed: its traceback is on stderr
        for p in procs:
            p.kill()
            p.wait()
        return Step(0.0, 1, 0.0, 0.0, 0.0, 0.0, 0.0, 0)
    appends = sum(counts)
    ok, checked, _ = asyncio.run(verify(url))
    errors += 0 if ok and checked == appends + warm else 1
    cores = os.cpu_count() or 1
    machine = (busy1 - busy0) / elapsed / cores
    ours = (cpu1 - cpu0 + pg1 - pg0) / elapsed / cores
    return Step(
        rate=appends / seconds,
        errors=errors,
        writer_ms=1000 * (cpu1 - cpu0) / max(appends, 1),
        pg_ms=1000 * (pg1 - pg0) / max(appends, 1),
        machine=machine,
        other=max(machine - ours, 0.0),
        lock_waits=waits.average,
        retried=retried,
    )


def db_reset(url: str) -> None:
    async def reset() -> None:
        db = Database(url)
        try:
            await db.execute("DELETE FROM audit")
        finally:
            await db.close()

    asyncio.run(reset())


async def verify(url: str) -> tuple[bool, int, int | None]:
    db = Database(url)
    try:
        return await AuditLog(db).verify()
    finally:
        await db.close()


async def prepare(url: str) -> None:
    db = Database(url)
    try:
        await migrate(db)
    finally:
        await db.close()


CONFIGS = {  # name: (writers, the old global chain)
    "1 writer, global chain": (1, True),
    "1 writer, chains": (1, False),
    "2 writers, global chain": (2, True),
    "2 writers, chains": (2, False),
    "4 writers, global chain": (4, True),
    "4 writers, chains": (4, False),
}


def cpu_table(steps: dict[str, list[Step]]) -> tuple[str, dict[str, dict[str, float]]]:
    """Per configuration, medians of the rounds: the table printed and its JSON."""
    summary: dict[str, dict[str, float]] = {}
    rows = [
        [
            "configuration",
            "appends/s",
            "writers ms/append",
            "PostgreSQL ms/append",
            "machine busy",
            "other",
            "advisory waits",
            "retried",
        ]
    ]
    for name, results in steps.items():
        med = {
            key: statistics.median(getattr(r, key) for r in results)
            for key in ("rate", "writer_ms", "pg_ms", "machine", "other", "lock_waits")
        }
        med["retried"] = sum(r.retried for r in results)
        summary[name] = med
        rows.append(
            [
                name,
                f"{med['rate']:,.0f}",
                f"{med['writer_ms']:.2f}",
                f"{med['pg_ms']:.2f}",
                f"{100 * med['machine']:.0f} %",
                f"{100 * med['other']:.0f} %",
                f"{med['lock_waits']:.2f}",
                f"{int(med['retried'])}",
            ]
        )
    return render_table(rows, right=range(1, 8)), summary


def main(args: argparse.Namespace) -> dict[str, Any]:
    with fresh_database() as url:
        asyncio.run(prepare(url))
        rounds = interleave(
            args.rounds,
            {
                name: (lambda w=w, old=old: step(url, w, args.tasks, args.duration, old))
                for name, (w, old) in CONFIGS.items()
            },
        )
    values = {name: [r.rate for r in results] for name, results in rounds.results.items()}
    errs = {name: sum(r.errors for r in results) for name, results in rounds.results.items()}
    table, cpu = cpu_table(rounds.results)

    def fig(goal: str, name: str, cand: str, base: str, target: Goal | None) -> dict[str, Any]:
        return figure(
            goal,
            name,
            values[cand],
            values[base],
            base,
            "appends/s",
            target,
            errors=errs[cand],
            baseline_errors=errs[base],
            cpu=cpu[cand],
            baseline_cpu=cpu[base],
        )

    one, two, four = "1 writer, chains", "2 writers, chains", "4 writers, chains"
    figures = [
        fig("A2", "2 writers vs 1, chains per shard", two, one, Goal(SCALE_GOAL)),
        fig("A4", "4 writers vs 1, chains per shard", four, one, None),
        fig(
            "A2g", "2 writers, chains vs the old global chain", two, "2 writers, global chain", None
        ),
        fig(
            "A4g",
            "4 writers, chains vs the old global chain",
            four,
            "4 writers, global chain",
            None,
        ),
        fig(
            "A2o",
            "2 writers vs 1, the old global chain",
            "2 writers, global chain",
            "1 writer, global chain",
            None,
        ),
    ]
    return {
        "benchmark": "audit_chains",
        "rounds": args.rounds,
        "duration": args.duration,
        "tasks": args.tasks,
        "loadavg": os.getloadavg(),
        "values": values,
        "cpu": cpu,
        "cpu_table": table,
        "figures": figures,
    }


def cli() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--writer":
        url, i, n, tasks, seconds, mode = sys.argv[2:8]
        doors = doors_of(int(i), int(n))
        from propdev.observability.logging import configure_logging

        with open(os.devnull, "w") as devnull:
            configure_logging(stream=devnull)  # as a node logs, the audit stream included
            asyncio.run(write(url, doors, int(tasks), float(seconds), mode == "old"))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="at least 3")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per step")
    parser.add_argument(
        "--tasks",
        type=int,
        default=4,
        help="appends in flight per writer (a node's 4 units writers)",
    )
    parser.add_argument("--quick", action="store_true", help="3 rounds of 3 s")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.duration = 3, 3.0
    result = main(args)
    print(result["cpu_table"])
    print_figures(result["figures"])
    write_json(args.json, result)


if __name__ == "__main__":
    cli()
