"""Door opens with the vendor as its own process: vs the bare two-hop chain, at 50 ms vendor
latency, and with one of two vendors down.

    .venv/bin/python bench/bench_vendors.py [--rounds 3] [--duration 4] [--quick]
        [--down kill|stop] [--json PATH]

Real processes: a node (`run.py seed-demo`, `run.py serve` pinned to CPU 0, SQLite) whose
partner `simulator` is `run.py partner-sim` on its own port (vendor A, `PROPDEV_PARTNER_URL`)
and whose partner `vendor-b` (adapter `vendor`, `base_url`) is a second `partner-sim` (vendor B);
both simulators and the load generators on CPU 1. A bench-only estate beside the demo's: one
door per connection on vendor A and half as many on vendor B, granted to anna and boris, so
that no device actor serialises two connections. The bare two-hop chain
(`bench/chain_server.py`, CPU 0, the node's TLS certificate) forwards each request with one
aiohttp ClientSession to a vendor: the tiny `bench/mock_vendor.py` (CPU 1) at 0 ms, vendor A's
simulator at 50 ms.

Each round, back to back:

* G4 (vendor at 0 ms): chain to the tiny mock vs the node, 64 connections on vendor A's
  doors; goals: node >= 0.5 x chain, node p99 <= 2 x chain p99 (performance.md G3/G4);
* V50 (vendors at 50 ms, `slow`): chain vs node, both through vendor A's simulator; the
  chain is the baseline because it pays the same vendor, latency and hops, so the ratio is
  what our own code costs when the vendor is slow (the ideal, connections / latency, is
  printed beside it);
* V2 (both vendors at 50 ms): vendor A's doors (half the connections) while vendor B's doors
  are asked too (the other half, each connection paced to one request per ``B_PACE_S``, the
  same pace in every state), with B up, then with B down (its process killed, or SIGSTOPped
  with --down stop); only A's opens are measured, in both; goal: A's opens/s with B down
  >= 0.9 x with B up. The pace keeps B's share of the work small either way, so neither side
  gets cheaper work (a refused open is cheaper than a granted one). B is restored and its
  breaker closed before the next round.

Rounds interleave every baseline with its candidate (``bench.common.interleave``, >= 3); an
answer but a 2xx on a measured side (A's doors; the chain) is an error and fails the figure.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import os
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.bench_open import check_open, log_in_residents
from bench.common import (
    LOOPBACK,
    Goal,
    LoadPlan,
    LoadResult,
    Target,
    figure,
    figure_line,
    free_port,
    interleave,
    load_errors,
    load_in_parallel,
    load_in_subprocess,
    node_env,
    pinning_available,
    process_cpu_seconds,
    render_table,
    running_node,
    seed_demo,
    until,
    write_json,
)
from bench.vendor_processes import Vendor, cert_args, helper_server, https, vendor
from propdev.partners import api_key_path, vendor_api_key

VENDOR_B = "vendor-b"
LATENCY_MS = 50
G4_GOAL = 0.5
P99_GOAL = 2.0
ISOLATION_GOAL = 0.9
DOWNS = ("kill", "stop")  # vendor B's process killed (refuses connections), stopped (hangs)
DOWN_NAMES = {"kill": "killed", "stop": "stopped"}
OPENERS = ("anna", "boris")
# V2: B's doors are asked at this pace per connection in both states (B up and B down), so
# that B's share of the node's work is small either way: a granted open (B up) costs more
# than a refused one (B down), and at this pace the difference is a few per cent of a core.
B_PACE_S = 1.0
SERVER_CPU, CLIENT_CPU = 0, 1


# --- the bench estate --------------------------------------------------------------------------


def door_ids(vendor: str, count: int) -> list[tuple[str, str]]:
    """(access point id, device id) of the bench doors of ``vendor`` ("a" or "b")."""
    return [(f"bench-{vendor}-{i:02d}", f"bench-{vendor}-door-{i:02d}") for i in range(count)]


async def add_bench_estate(
    env: dict[str, str], credentials: dict[str, Any], url_b: str, doors: dict[str, int]
) -> None:
    """Partner ``vendor-b`` at ``url_b`` (the simulator's protocol) and the bench doors of both
    vendors, which anna and boris may open; the demo estate is left as it is."""
    from propdev.config import Settings
    from propdev.devkit import LOOPBACK as LOOPBACK_CIDRS
    from propdev.devkit import PARTNER, SITE, register_partner
    from propdev.storage import Database
    from propdev.storage.directory import AccessPoint, Directory

    settings = Settings.from_env(env)
    db = Database(settings.database_url)
    try:
        await register_partner(
            settings, db, VENDOR_B, LOOPBACK_CIDRS, adapter="vendor", base_url=url_b
        )
        directory = Directory(db)
        openers = [r["id"] for r in credentials["residents"] if r["username"] in OPENERS]
        for vendor, partner in (("a", PARTNER), ("b", VENDOR_B)):
            for ap_id, device_id in door_ids(vendor, doors[vendor]):
                await directory.put_access_point(
                    AccessPoint(ap_id, ap_id, "door", SITE[0], "bld-a", partner, device_id)
                )
                for user_id in openers:
                    await directory.grant(user_id, ap_id)
    finally:
        await db.close()


# --- load ------------------------------------------------------------------------------------


@dataclass
class Measured:
    """A load result and the vendors' CPU share over the run (warm-up included)."""

    load: LoadResult
    vendor_cpu: float


def measure(plan: LoadPlan, cpu: int | None, vendor_pid: int) -> Measured:
    before, started = process_cpu_seconds(vendor_pid), time.monotonic()
    load = load_in_subprocess(plan, cpu=cpu)
    wall = time.monotonic() - started
    return Measured(load, (process_cpu_seconds(vendor_pid) - before) / wall)


def open_targets(doors: list[tuple[str, str]], tokens: dict[str, str]) -> list[Target]:
    return [
        Target(
            "POST",
            f"/api/v1/access-points/{ap_id}/open",
            {"Authorization": f"Bearer {tokens[OPENERS[i % len(OPENERS)]]}"},
        )
        for i, (ap_id, _) in enumerate(doors)
    ]


def opens_b(node_port: int, ca: Path, target: Target) -> bool:
    return https(node_port, ca, target.method, target.path, headers=target.headers)[0] == 200


# --- the run ---------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> dict[str, Any]:
    pin = pinning_available()
    server_cpu, client_cpu = (SERVER_CPU, CLIENT_CPU) if pin else (None, None)
    n = args.connections
    doors = {"a": n, "b": n // 2}
    a_doors, b_doors = door_ids("a", doors["a"]), door_ids("b", doors["b"])
    started = time.monotonic()
    runs: dict[str, list[Measured]] = {k: [] for k in ("chain0", "node0", "chain50", "node50")}
    downs = DOWNS if args.down == "both" else (args.down,)
    pairs: dict[str, list[LoadResult]] = {
        f"{state}_{doors}": [] for state in ("up", *downs) for doors in "ab"
    }
    restored_s: dict[str, list[float]] = {how: [] for how in downs}
    with (
        tempfile.TemporaryDirectory(prefix="propdev-bench-vendors-") as tmp,
        contextlib.ExitStack() as stack,
    ):
        data_dir = Path(tmp)
        node_port, port_a, port_b = free_port(), free_port(), free_port()
        env = node_env(
            data_dir,
            node_port,
            PROPDEV_ACCESS_TOKEN_TTL="900",
            PROPDEV_PARTNER_URL=f"https://{LOOPBACK}:{port_a}",
            PROPDEV_BREAKER_RESET="2",  # B's breaker closes soon after B is back
        )
        credentials = seed_demo(env)
        asyncio.run(add_bench_estate(env, credentials, f"https://{LOOPBACK}:{port_b}", doors))
        # Vendor B is another partner-sim, which takes the simulator's key: give it to vendor-b.
        key_b = api_key_path(data_dir, VENDOR_B)
        key_b.parent.mkdir(parents=True, exist_ok=True)
        key_b.write_text(vendor_api_key(data_dir, "simulator") + "\n")
        sim_a = stack.enter_context(
            vendor(Vendor("a", data_dir, port_a, env, [d for _, d in a_doors]), client_cpu)
        )
        sim_b = stack.enter_context(
            vendor(Vendor("b", data_dir, port_b, env, [d for _, d in b_doors]), client_cpu)
        )
        node = stack.enter_context(running_node(data_dir, env, cpu=server_cpu))
        mock, mock_port = stack.enter_context(
            helper_server(
                "mock_vendor.py", cert_args(data_dir, "partner-sim"), data_dir, client_cpu
            )
        )
        chain, chain_port = stack.enter_context(
            helper_server(
                "chain_server.py",
                [
                    *cert_args(data_dir, "server"),
                    str(data_dir / "pki" / "ca.pem"),
                    sim_a.url,
                    f"https://{LOOPBACK}:{mock_port}",
                ],
                data_dir,
                server_cpu,
                dict(os.environ, PROPDEV_BENCH_VENDOR_KEY=vendor_api_key(data_dir, "simulator")),
            )
        )
        ca = node.ca_cert

        def plan(port: int, targets: list[Target], pid: int | None) -> LoadPlan:
            return LoadPlan(
                port=port,
                ca_cert=str(ca),
                targets=targets,
                connections=len(targets),
                warmup=args.warmup,
                duration=args.duration,
                server_pid=pid,
            )

        chain_plans = {  # 0 ms: the tiny mock vendor (G4); 50 ms: the simulator, as the node
            ms: plan(
                chain_port, [Target("POST", f"/chain/{up}/{d}") for _, d in a_doors], chain.pid
            )
            for ms, up in ((0, "mock"), (LATENCY_MS, "sim"))
        }
        current: dict[str, Any] = {}

        def log_in_and_chain0() -> None:  # each round starts with fresh tokens
            tokens = asyncio.run(log_in_residents(node.base_url, ca, credentials))
            current["a"] = open_targets(a_doors, tokens)
            current["b"] = [replace(t, pace_s=B_PACE_S) for t in open_targets(b_doors, tokens)]
            if not runs["chain0"]:
                check_open(node.base_url, ca, current["a"][0])
                check_open(node.base_url, ca, current["b"][0])
            at_latency(0)
            runs["chain0"].append(measure(chain_plans[0], client_cpu, mock.pid))

        def at_latency(ms: int) -> None:
            sim_a.set_latency(ms)
            sim_b.set_latency(ms)

        def node_at(ms: int) -> None:
            node_plan = plan(node.port, current["a"], node.process.pid)
            runs[f"node{ms}"].append(measure(node_plan, client_cpu, sim_a.pid))

        def chain50() -> None:
            at_latency(LATENCY_MS)
            runs[f"chain{LATENCY_MS}"].append(
                measure(chain_plans[LATENCY_MS], client_cpu, sim_a.pid)
            )

        def two_vendors(state: str) -> None:
            # Only A's doors are measured; B's are asked at the same pace in every state.
            half_a = plan(node.port, current["a"][: len(current["b"])], node.process.pid)
            half_b = plan(node.port, current["b"], None)
            if state != "up":
                sim_b.down(state)
            a, b = load_in_parallel([half_a, half_b], client_cpu)
            pairs[f"{state}_a"].append(a)
            pairs[f"{state}_b"].append(b)
            if state != "up":
                sim_b.up()
                back = time.monotonic()
                opens_again = until(
                    functools.partial(opens_b, node.port, ca, current["b"][0]),
                    within=60,
                    what="vendor B opens again",
                    every=0.2,
                )
                restored_s[state].append(opens_again - back)
            if state == downs[-1]:
                print(
                    f"  round {len(pairs['up_a'])}: 0 ms chain "
                    f"{runs['chain0'][-1].load.req_per_s:,.0f} node "
                    f"{runs['node0'][-1].load.req_per_s:,.0f}; {LATENCY_MS} ms chain "
                    f"{runs['chain50'][-1].load.req_per_s:,.0f} node "
                    f"{runs['node50'][-1].load.req_per_s:,.0f}; vendor A's doors with B up "
                    + ", ".join(
                        f"{pairs[f'{st}_a'][-1].req_per_s:,.0f}"
                        + ("" if st == "up" else f" B {DOWN_NAMES[st]}")
                        for st in ("up", *downs)
                    )
                    + " opens/s",
                    file=sys.stderr,
                    flush=True,
                )

        # Each round: every baseline right before its candidate (chain, node; B up, B down).
        steps = {
            "chain0": log_in_and_chain0,
            "node0": lambda: node_at(0),
            "chain50": chain50,
            "node50": lambda: node_at(LATENCY_MS),
            "up": lambda: two_vendors("up"),
        }
        steps.update({how: functools.partial(two_vendors, how) for how in downs})
        interleave(args.rounds, steps)
    return summary(args, runs, pairs, restored_s, pin, time.monotonic() - started)


def per_core(m: Measured) -> float:
    return m.load.req_per_s / m.load.server_cpu if m.load.server_cpu else 0.0


def summary(
    args: argparse.Namespace,
    runs: dict[str, list[Measured]],
    pairs: dict[str, list[LoadResult]],
    restored_s: dict[str, list[float]],
    pinned_: bool,
    elapsed: float,
) -> dict[str, Any]:
    rate = {k: [m.load.req_per_s for m in v] for k, v in runs.items()}
    p50 = {k: [m.load.p50_ms for m in v] for k, v in runs.items()}
    p99 = {k: [m.load.p99_ms for m in v] for k, v in runs.items()}
    errs = {k: load_errors(m.load for m in v) for k, v in runs.items()}
    ideal = args.connections / (LATENCY_MS / 1000)

    def errors(node: str, chain: str) -> dict[str, int]:
        return {
            "errors": errs[node][0],
            "baseline_errors": errs[chain][0],
            "attempts": errs[node][1] + errs[chain][1],
        }

    figures = [
        figure(
            "G4",
            "door open, vendor as its own process (0 ms)",
            rate["node0"],
            rate["chain0"],
            "bare two-hop chain to a tiny mock",
            "req/s",
            Goal(G4_GOAL),
            **errors("node0", "chain0"),
        ),
        figure(
            "G4c",
            "  per front core (noise-robust)",
            [per_core(m) for m in runs["node0"]],
            [per_core(m) for m in runs["chain0"]],
            "chain front per core",
            "req/core-s",
            Goal(G4_GOAL),
            **errors("node0", "chain0"),
        ),
        figure(
            "G4p",
            "  p99 of the door open (0 ms)",
            p99["node0"],
            p99["chain0"],
            "chain's p99",
            "ms",
            Goal(P99_GOAL, higher=False),
            **errors("node0", "chain0"),
        ),
        figure(
            "V50",
            f"door open, vendor at {LATENCY_MS} ms",
            rate["node50"],
            rate["chain50"],
            f"chain, same vendor at {LATENCY_MS} ms",
            "req/s",
            Goal(G4_GOAL),
            **errors("node50", "chain50"),
        ),
    ]
    for how in restored_s:
        down_a, up_a = pairs[f"{how}_a"], pairs["up_a"]
        (a_err, a_n), (base_err, base_n) = load_errors(down_a), load_errors(up_a)
        f = figure(
            "V2" if how == "kill" else "V2s",
            f"vendor A's opens/s, vendor B {DOWN_NAMES[how]}",
            [r.req_per_s for r in down_a],
            [r.req_per_s for r in up_a],
            "with vendor B up",
            "opens/s",
            Goal(ISOLATION_GOAL),
            errors=a_err,  # A's doors only: B's answers are expected to fail while B is down
            baseline_errors=base_err,
            attempts=a_n + base_n,
            p50_ms=statistics.median(r.p50_ms for r in down_a),
            p99_ms=statistics.median(r.p99_ms for r in down_a),
            baseline_p99_ms=statistics.median(r.p99_ms for r in up_a),
            b_pace_s=B_PACE_S,
            b_answers=[r.statuses for r in pairs[f"{how}_b"]],
            b_answers_up=[r.statuses for r in pairs["up_b"]],
        )
        figures.append(f)
    for f, key, base in (
        (figures[0], "node0", "chain0"),
        (figures[3], "node50", "chain50"),
    ):
        f["p50_ms"] = statistics.median(p50[key])
        f["p99_ms"] = statistics.median(p99[key])
        f["baseline_p50_ms"] = statistics.median(p50[base])
        f["baseline_p99_ms"] = statistics.median(p99[base])
    figures[3]["ideal_per_s"] = ideal
    return {
        "benchmark": "vendors",
        "python": platform.python_version(),
        "pinned": pinned_,
        "connections": args.connections,
        "latency_ms": LATENCY_MS,
        "down": list(restored_s),
        "rounds": args.rounds,
        "warmup_s": args.warmup,
        "duration_s": args.duration,
        "ideal_at_latency_per_s": ideal,
        "runs": {
            k: [dict(asdict(m.load), vendor_cpu=m.vendor_cpu) for m in v] for k, v in runs.items()
        },
        "two_vendors": {k: [asdict(r) for r in v] for k, v in pairs.items()},
        "b_restored_s": restored_s,
        "figures": figures,
        "loadavg": os.getloadavg(),
        "elapsed_s": round(elapsed, 1),
    }


def pct(share: float | None) -> str:
    return "-" if share is None else f"{share * 100:.0f}%"


def table(result: dict[str, Any]) -> str:
    names = {
        "chain0": "chain, mock vendor 0 ms",
        "node0": "node open, simulator 0 ms",
        "chain50": f"chain, simulator {LATENCY_MS} ms",
        "node50": f"node open, simulator {LATENCY_MS} ms",
    }
    head = "round config req/s p50_ms p99_ms errors front vendor client other"
    rows = [[h.replace("_", " ") for h in head.split()]]
    for key, name in names.items():
        for i, run in enumerate(result["runs"][key], 1):
            rows.append(
                [
                    str(i),
                    name,
                    f"{run['req_per_s']:,.0f}",
                    f"{run['p50_ms']:.1f}",
                    f"{run['p99_ms']:.1f}",
                    str(run["errors"]),
                    pct(run["server_cpu"]),
                    pct(run["vendor_cpu"]),
                    pct(run["client_cpu"]),
                    pct(run["other_cpu"]),
                ]
            )
    two = result["two_vendors"]
    states = [("up", "up"), *((how, DOWN_NAMES[how]) for how in result["down"])]
    for doors, who in (("a", "A's doors"), ("b", "B's doors (paced)")):
        for state, name in states:
            for i, run in enumerate(two[f"{state}_{doors}"], 1):
                rows.append(
                    [
                        str(i),
                        f"{who}, B {name}",
                        f"{run['req_per_s']:,.0f}",
                        f"{run['p50_ms']:.1f}",
                        f"{run['p99_ms']:.1f}",
                        " ".join(f"{s}:{c}" for s, c in run["statuses"].items() if s != "200")
                        or "0",
                        pct(run["server_cpu"]),
                        "",
                        pct(run["client_cpu"]),
                        pct(run["other_cpu"]),
                    ]
                )
    lines = [
        "front: the node's or the chain front's share of its core in the window; vendor: the",
        "simulator's share over the whole run (warm-up included); client: the load generator's",
        "share of one core; other: every other process on the machine (noise)",
        render_table(rows, right=(2, 3, 4, 6, 7, 8, 9)),
        "",
    ]
    lines += [figure_line(f) for f in result["figures"]]
    lines.append(
        f"{result['connections']} connections; ideal at {LATENCY_MS} ms: "
        f"{result['ideal_at_latency_per_s']:,.0f} req/s; vendor B back (an open 200 through the "
        "node) in "
        + "; ".join(
            f"{', '.join(f'{s:.1f}' for s in times)} s after {DOWN_NAMES[how]}"
            for how, times in result["b_restored_s"].items()
        )
        + "; "
        + ("front on CPU 0, vendors and load on CPU 1" if result["pinned"] else "NOT pinned")
    )
    return "\n".join(lines)


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=4.0, help="seconds measured per run")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds before each window")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--down", choices=["kill", "stop", "both"], default="both")
    parser.add_argument("--quick", action="store_true", help="3 rounds of 3 s")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.duration = 3, min(args.duration, 3.0)
    if args.rounds < 3 or args.duration <= 0 or args.connections < 2:
        parser.error("--rounds at least 3, --duration positive, --connections at least 2")
    result = run(args)
    print(table(result))
    write_json(args.json, result)


if __name__ == "__main__":
    cli()
