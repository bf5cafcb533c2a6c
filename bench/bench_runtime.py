"""Benchmark of the actor runtime against bare asyncio, measured in the same run.

    .venv/bin/python bench/bench_runtime.py [--json PATH] [--actors 100000] [--rounds 5]

* tell: batches of tells to one actor vs batches of `Queue.put_nowait` to one consumer
  task (`await queue.get()`); each batch ends when the consumer has seen it all;
* ask: sequential asks to one actor vs a bare `Queue` + `Future` round trip;
* G6m memory: RSS growth (VmRSS from /proc/self/status) for N activated, idle device actors vs
  the same N held bare (a dict of address -> (state object, empty ``collections.deque``
  mailbox), each having handled one message: the least an actor per device can hold), each
  measured in a fresh process so that no round reuses another's freed memory; goal < 150 MB
  for 100k (an absolute level, the ratio printed beside);
* G6a activation rate of those N actors vs creating the N bare entries (info, no goal);
* G6p passivation rate (info, no goal, no baseline).

Rounds interleave bare and runtime (``bench.common.interleave``, >= 3); each figure reports
the median ratio of the rounds and its spread.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import gc
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import Goal, ainterleave, figure, interleave, print_figures
from propdev.actors import Actor, ActorSystem, Address

TELL_GOAL = 0.25
ASK_GOAL = 0.5
MEMORY_GOAL_MB = 150.0
BATCH = 500


def rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status")


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Sink(Actor):
    """Counts messages; sets `done` when it has seen `expect` of them."""

    def __init__(self) -> None:
        self.seen = 0
        self.expect = -1
        self.done: asyncio.Event | None = None

    async def receive(self, message: object) -> object:
        self.seen += 1
        if self.seen == self.expect and self.done is not None:
            self.done.set()
        return message


class Device(Actor):
    """A small idle device actor, about the size of the real one's in-memory state."""

    def __init__(self) -> None:
        self.online: bool | None = None
        self.opens = 0
        self.last_seen: float | None = None

    async def receive(self, message: object) -> object:
        self.opens += 1
        return self.opens


async def bare_tell(n: int) -> float:
    queue: asyncio.Queue[int] = asyncio.Queue(maxsize=BATCH * 2)
    state = {"seen": 0, "expect": 0}
    done = asyncio.Event()

    async def consumer() -> None:
        while True:
            await queue.get()
            state["seen"] += 1
            if state["seen"] == state["expect"]:
                done.set()

    task = asyncio.create_task(consumer())
    start = time.perf_counter()
    sent = 0
    while sent < n:
        done.clear()
        state["expect"] = sent + BATCH
        for i in range(BATCH):
            queue.put_nowait(i)
        sent += BATCH
        await done.wait()
    elapsed = time.perf_counter() - start
    task.cancel()
    await asyncio.wait((task,))
    return n / elapsed


async def runtime_tell(system: ActorSystem, sink: Sink, address: str, n: int) -> float:
    done = asyncio.Event()
    sink.seen = 0
    sink.done = done
    tell = system.tell
    start = time.perf_counter()
    sent = 0
    while sent < n:
        done.clear()
        sink.expect = sent + BATCH
        for i in range(BATCH):
            tell(address, i)
        sent += BATCH
        await done.wait()
    return n / (time.perf_counter() - start)


async def bare_ask(n: int) -> float:
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[int, asyncio.Future[int]]] = asyncio.Queue(maxsize=1000)

    async def consumer() -> None:
        while True:
            item, reply = await queue.get()
            reply.set_result(item)

    task = asyncio.create_task(consumer())
    start = time.perf_counter()
    for i in range(n):
        reply: asyncio.Future[int] = loop.create_future()
        queue.put_nowait((i, reply))
        await reply
    elapsed = time.perf_counter() - start
    task.cancel()
    await asyncio.wait((task,))
    return n / elapsed


async def runtime_ask(system: ActorSystem, address: str, n: int) -> float:
    ask = system.ask
    start = time.perf_counter()
    for i in range(n):
        await ask(address, i)
    return n / (time.perf_counter() - start)


async def interleave_rates(
    rounds: int, bare: Callable[[], Awaitable[float]], runtime: Callable[[], Awaitable[float]]
) -> tuple[list[float], list[float]]:
    runs = await ainterleave(rounds, {"bare": bare, "runtime": runtime})
    return runs.results["bare"], runs.results["runtime"]


async def throughput(rounds: int, tells: int, asks: int) -> list[dict[str, Any]]:
    system = ActorSystem("bench", sweep_interval=float("inf"), mailbox_capacity=BATCH * 2)
    sink = Sink()
    system.register_kind("sink", lambda address: sink)
    await system.start()
    address = "sink:1"
    await system.ask(address, "warm-up")
    await bare_tell(tells // 10)
    await bare_ask(asks // 10)
    tell_bare, tell_runtime = await interleave_rates(
        rounds, lambda: bare_tell(tells), lambda: runtime_tell(system, sink, address, tells)
    )
    ask_bare, ask_runtime = await interleave_rates(
        rounds, lambda: bare_ask(asks), lambda: runtime_ask(system, address, asks)
    )
    await system.stop()
    return [
        figure(
            "G6",
            "actor tell",
            tell_runtime,
            tell_bare,
            "asyncio.Queue put/get",
            "msg/s",
            Goal(TELL_GOAL),
        ),
        figure(
            "G6",
            "actor ask",
            ask_runtime,
            ask_bare,
            "Queue + Future round trip",
            "ask/s",
            Goal(ASK_GOAL),
        ),
    ]


async def bare_population(n: int) -> dict[str, Any]:
    """G6m's baseline: the least an actor per device holds (its state object and an empty
    ``collections.deque`` mailbox in a dict by address), each entry after one message."""
    entries: dict[str, tuple[Device, collections.deque[object]]] = {}
    gc.collect()
    before = rss_kib()
    start = time.perf_counter()
    for i in range(n):
        device, mailbox = entries.setdefault(f"device:{i}", (Device(), collections.deque()))
        mailbox.append("ping")
        await device.receive(mailbox.popleft())
        if i % 1000 == 999:
            await asyncio.sleep(0)
    created_s = time.perf_counter() - start
    gc.collect()
    after = rss_kib()
    assert len(entries) == n
    return {
        "actors": n,
        "rss_delta_mb": round((after - before) / 1024, 1),
        "kib_per_actor": round((after - before) / n, 3),
        "activations_per_s": round(n / created_s),
    }


async def population(n: int) -> dict[str, Any]:
    clock = FakeClock()
    system = ActorSystem(
        "bench-memory", idle_timeout=60.0, sweep_interval=float("inf"), clock=clock
    )
    system.register_kind("device", lambda address: Device())
    await system.start()
    addresses = [f"device:{i}" for i in range(n)]
    last = Address("device", "probe")
    gc.collect()
    before = rss_kib()
    start = time.perf_counter()
    for chunk in range(0, n, 1000):
        for address in addresses[chunk : chunk + 1000]:
            system.tell(address, "ping")
        await system.ask(last, "ping")  # every earlier activation in the chunk has run by now
    activation_s = time.perf_counter() - start
    await asyncio.sleep(0)
    gc.collect()
    after = rss_kib()
    actors = system.snapshot()["supervisors"][0]["actors"]
    idle = sum(1 for actor in actors if actor["state"] == "idle")
    delta_kib = after - before
    clock.now += 61.0
    start = time.perf_counter()
    passivated = await system.passivate_idle()
    passivation_s = time.perf_counter() - start
    await system.stop()
    return {
        "actors": n,
        "listed_idle": idle,
        "rss_before_mb": round(before / 1024, 1),
        "rss_after_mb": round(after / 1024, 1),
        "rss_delta_mb": round(delta_kib / 1024, 1),
        "kib_per_actor": round(delta_kib / n, 3),
        "goal_mb": MEMORY_GOAL_MB,
        "activations_per_s": round(n / activation_s),
        "passivated": passivated,
        "passivations_per_s": round(passivated / passivation_s) if passivation_s else None,
    }


def population_in_process(kind: str, n: int) -> dict[str, Any]:
    """``population`` (kind "actors") or ``bare_population`` in a fresh process."""
    done = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--population", kind, "--actors", str(n)],
        capture_output=True,
        check=True,
        timeout=600,
    )
    return dict(json.loads(done.stdout))


def population_figures(rounds: int, n: int) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    runs = interleave(
        rounds,
        {
            "bare": lambda: population_in_process("bare", n),
            "actors": lambda: population_in_process("actors", n),
        },
    )
    bare, actors = runs.results["bare"], runs.results["actors"]
    passivated_all = all(r["passivated"] >= n for r in actors)  # n, and the probe
    figures = [
        figure(
            "G6m",
            f"RSS of {n:,} idle device actors",
            [r["rss_delta_mb"] for r in actors],
            [r["rss_delta_mb"] for r in bare],
            "bare: dict of state + deque mailbox",
            "MB",
            Goal(MEMORY_GOAL_MB, higher=False, of="value", unit="MB"),
            kib_per_actor=statistics.median(r["kib_per_actor"] for r in actors),
        ),
        figure(
            "G6a",
            "actor activations",
            [r["activations_per_s"] for r in actors],
            [r["activations_per_s"] for r in bare],
            "bare dict entries created",
            "/s",
            None,
        ),
        figure(
            "G6p",
            "actor passivations",
            [r["passivations_per_s"] or 0 for r in actors],
            None,
            "",
            "/s",
            None,
            errors=0 if passivated_all else 1,  # an actor left active is an error
        ),
    ]
    return figures, {"bare": bare, "actors": actors}


async def main(args: argparse.Namespace) -> dict[str, Any]:
    figures, populations = population_figures(args.rounds, args.actors)
    figures = [*await throughput(args.rounds, args.tells, args.asks), *figures]
    return {
        "benchmark": "runtime",
        "python": sys.version.split()[0],
        "rounds": args.rounds,
        "populations": populations,
        "figures": figures,
    }


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="write the results as JSON to this path")
    parser.add_argument("--actors", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5, help="at least 3")
    parser.add_argument("--tells", type=int, default=200_000)
    parser.add_argument("--asks", type=int, default=50_000)
    parser.add_argument("--quick", action="store_true", help="3 rounds, fewer messages")
    parser.add_argument("--population", choices=["actors", "bare"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(30))
    if args.population is not None:  # one G6m round, in its own process
        make = population if args.population == "actors" else bare_population
        print(json.dumps(asyncio.run(make(args.actors))))
        return
    if args.quick:
        args.rounds, args.tells, args.asks = 3, 100_000, 20_000
    result = asyncio.run(main(args))
    print_figures(result["figures"])
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    cli()
