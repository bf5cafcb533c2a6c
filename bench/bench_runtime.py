"""Benchmark of the actor runtime against bare asyncio, measured in the same run.

    .venv/bin/python bench/bench_runtime.py [--json PATH] [--actors 100000] [--rounds 5]

* tell: batches of tells to one actor vs batches of `Queue.put_nowait` to one consumer
  task (`await queue.get()`); each batch ends when the consumer has seen it all;
* ask: sequential asks to one actor vs a bare `Queue` + `Future` round trip;
* memory: RSS growth (VmRSS from /proc/self/status) for N activated, idle device actors;
* activation and passivation rates for those N actors.

Rounds alternate bare and runtime; the median of each is reported.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

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


async def interleave(
    rounds: int, bare: Callable[[], Awaitable[float]], runtime: Callable[[], Awaitable[float]]
) -> tuple[float, float, list[float]]:
    bare_rates: list[float] = []
    runtime_rates: list[float] = []
    for _ in range(rounds):
        bare_rates.append(await bare())
        runtime_rates.append(await runtime())
    ratios = [r / b for r, b in zip(runtime_rates, bare_rates, strict=True)]
    return statistics.median(bare_rates), statistics.median(runtime_rates), ratios


async def throughput(rounds: int, tells: int, asks: int) -> dict[str, Any]:
    system = ActorSystem("bench", sweep_interval=float("inf"), mailbox_capacity=BATCH * 2)
    sink = Sink()
    system.register_kind("sink", lambda address: sink)
    await system.start()
    address = "sink:1"
    await system.ask(address, "warm-up")
    await bare_tell(tells // 10)
    await bare_ask(asks // 10)
    tell_bare, tell_runtime, tell_ratios = await interleave(
        rounds, lambda: bare_tell(tells), lambda: runtime_tell(system, sink, address, tells)
    )
    ask_bare, ask_runtime, ask_ratios = await interleave(
        rounds, lambda: bare_ask(asks), lambda: runtime_ask(system, address, asks)
    )
    await system.stop()
    return {
        "tell": {
            "bare_per_s": round(tell_bare),
            "runtime_per_s": round(tell_runtime),
            "ratio": round(statistics.median(tell_ratios), 3),
            "ratios": [round(r, 3) for r in tell_ratios],
            "goal": TELL_GOAL,
        },
        "ask": {
            "bare_per_s": round(ask_bare),
            "runtime_per_s": round(ask_runtime),
            "ratio": round(statistics.median(ask_ratios), 3),
            "ratios": [round(r, 3) for r in ask_ratios],
            "goal": ASK_GOAL,
        },
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


def table(result: dict[str, Any]) -> str:
    tell, ask, pop = result["tell"], result["ask"], result["population"]
    mark = lambda ok: "ok" if ok else "MISSED"  # noqa: E731
    rows = [
        ("measure", "bare asyncio", "runtime", "ratio", "goal"),
        (
            "tell/s",
            f"{tell['bare_per_s']:,}",
            f"{tell['runtime_per_s']:,}",
            f"{tell['ratio']:.2f}",
            f">= {TELL_GOAL} {mark(tell['ratio'] >= TELL_GOAL)}",
        ),
        (
            "ask/s",
            f"{ask['bare_per_s']:,}",
            f"{ask['runtime_per_s']:,}",
            f"{ask['ratio']:.2f}",
            f">= {ASK_GOAL} {mark(ask['ratio'] >= ASK_GOAL)}",
        ),
        (
            f"RSS {pop['actors']:,} idle",
            "",
            f"{pop['rss_delta_mb']} MB",
            f"{pop['kib_per_actor']} KiB/actor",
            f"< {MEMORY_GOAL_MB:g} MB {mark(pop['rss_delta_mb'] < MEMORY_GOAL_MB)}",
        ),
        ("activations/s", "", f"{pop['activations_per_s']:,}", "", ""),
        ("passivations/s", "", f"{pop['passivations_per_s']:,}", "", ""),
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows
    )


async def main(args: argparse.Namespace) -> dict[str, Any]:
    result: dict[str, Any] = {"python": sys.version.split()[0], "rounds": args.rounds}
    result["population"] = await population(args.actors)
    result.update(await throughput(args.rounds, args.tells, args.asks))
    return result


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="write the results as JSON to this path")
    parser.add_argument("--actors", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--tells", type=int, default=200_000)
    parser.add_argument("--asks", type=int, default=50_000)
    args = parser.parse_args()
    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(30))
    result = asyncio.run(main(args))
    print(table(result))
    text = json.dumps(result, indent=2)
    if args.json is not None:
        args.json.write_text(text + "\n")
    else:
        print(text)


if __name__ == "__main__":
    cli()
