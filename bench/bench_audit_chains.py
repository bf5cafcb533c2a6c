"""Audit appends per second on PostgreSQL: a chain per shard against the old global chain.

    .venv/bin/python bench/bench_audit_chains.py [--rounds 3] [--duration 3] [--quick] [--json PATH]

Each writer is its own process, standing for a node: its own ``Database`` on one fresh
PostgreSQL database, ``--tasks`` concurrent appends (``audit.sync_append`` in a
``Database.unit``, as the opening pipeline writes them) for ``--duration`` seconds, for the
doors of its own shards (writer *i* of *n* holds the shards ``s`` with ``s % n == i``, as a
node of a cluster of *n* holds its share). Writers start together (each reports ready, then
all are told to go) and the appends all of them committed make the figure. The audit table is
emptied before each step, and every chain verified after it (a broken chain is an error).

* **A2** appends/s with 2 writers vs 1 writer, both on chains per shard (issue 13's goal: >= 1.7);
* **A4** 4 writers vs 1 writer, chains per shard (info);
* **A2g** 2 writers on chains per shard vs 2 writers on the old global chain (one advisory
  lock, the global last hash; replayed here as it was before schema 17), info;
* **A1g** 1 writer, chains per shard vs the old global chain (info).

Rounds interleave every configuration (``bench.common.interleave``, >= 3). Not pinned: the
writers and PostgreSQL share the machine's two cores (ratios, not absolute figures).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import Goal, figure, interleave, print_figures, write_json
from propdev.registry import SHARDS, shard_of
from propdev.storage import Database, UnitConnection, audit, migrate
from propdev.storage.audit import GENESIS, AuditLog, AuditRecord
from tests.support.postgres import fresh_database

SCALE_GOAL = 1.7  # issue 13: two nodes' appends at least 1.7 times one node's
DOORS = [f"door-{n}" for n in range(4 * SHARDS)]


def doors_of(writer: int, writers: int) -> list[str]:
    return [d for d in DOORS if shard_of(d) % writers == writer]


def global_append(conn: UnitConnection, record: AuditRecord) -> None:
    """An append as it was before chains: one global lock, the global last hash, chain 0."""
    conn.run("SELECT pg_advisory_xact_lock(:k)", k=audit._LOCK_KEY)
    last = conn.run("SELECT hash FROM audit ORDER BY id DESC LIMIT 1")
    params = audit._insert_params(replace(record, chain=0), last[0]["hash"] if last else GENESIS)
    conn.run(audit._INSERT, **params)


async def write(url: str, doors: list[str], tasks: int, seconds: float, old: bool) -> int:
    """Append for ``seconds`` from ``tasks`` concurrent units; the number committed."""
    db = Database(url, pool_size=tasks)
    append = global_append if old else audit.sync_append
    done = 0
    try:
        await db.fetch_all("SELECT 1")
        print("ready", flush=True)
        sys.stdin.readline()  # go
        deadline = time.perf_counter() + seconds

        async def worker(k: int) -> None:
            nonlocal done
            n = 0
            while time.perf_counter() < deadline:
                door = doors[(k + n * tasks) % len(doors)]
                record = AuditRecord(time.time(), f"user:w{k}", "open", door, "granted")
                await db.unit(lambda conn, r=record: append(conn, r))
                n += 1
                done += 1

        await asyncio.gather(*(worker(k) for k in range(tasks)))
    finally:
        await db.close()
    return done


def step(url: str, writers: int, tasks: int, seconds: float, old: bool) -> tuple[float, int]:
    """One configuration: (appends/s of all writers together, errors)."""
    db_reset(url)
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
    for p in procs:
        assert p.stdout is not None and p.stdout.readline().strip() == "ready"
    for p in procs:
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()
    counts, errors = [], 0
    for p in procs:
        out, _ = p.communicate(timeout=seconds + 120)
        if p.returncode != 0:
            errors += 1
            continue
        counts.append(int(out.strip().splitlines()[-1]))
    ok, checked, _ = asyncio.run(verify(url))
    errors += 0 if ok and checked == sum(counts) else 1
    return sum(counts) / seconds, errors


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


def main(args: argparse.Namespace) -> dict[str, Any]:
    configs = {
        "1 writer, global chain": (1, True),
        "1 writer, chains": (1, False),
        "2 writers, global chain": (2, True),
        "2 writers, chains": (2, False),
        "4 writers, chains": (4, False),
    }
    with fresh_database() as url:
        asyncio.run(prepare(url))
        rounds = interleave(
            args.rounds,
            {
                name: (lambda w=w, old=old: step(url, w, args.tasks, args.duration, old))
                for name, (w, old) in configs.items()
            },
        )
    values = {name: [r[0] for r in results] for name, results in rounds.results.items()}
    errs = {name: sum(r[1] for r in results) for name, results in rounds.results.items()}

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
        )

    figures = [
        fig(
            "A2",
            "2 writers vs 1, chains per shard",
            "2 writers, chains",
            "1 writer, chains",
            Goal(SCALE_GOAL),
        ),
        fig(
            "A4", "4 writers vs 1, chains per shard", "4 writers, chains", "1 writer, chains", None
        ),
        fig(
            "A2g",
            "2 writers, chains vs the old global chain",
            "2 writers, chains",
            "2 writers, global chain",
            None,
        ),
        fig(
            "A1g",
            "1 writer, chains vs the old global chain",
            "1 writer, chains",
            "1 writer, global chain",
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
        "figures": figures,
    }


def cli() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--writer":
        url, i, n, tasks, seconds, mode = sys.argv[2:8]
        doors = doors_of(int(i), int(n))
        print(asyncio.run(write(url, doors, int(tasks), float(seconds), mode == "old")))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="at least 3")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per step")
    parser.add_argument("--tasks", type=int, default=8, help="concurrent appends per writer")
    parser.add_argument("--quick", action="store_true", help="3 rounds of 3 s")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.duration = 3, 3.0
    result = main(args)
    print_figures(result["figures"])
    write_json(args.json, result)


if __name__ == "__main__":
    cli()
