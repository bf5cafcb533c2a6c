"""HTTP benchmarks against a bare aiohttp server measured in the same run (G1, G2, G11).

    .venv/bin/python bench/bench_http.py [--rounds 3] [--duration 4] [--quick] [--json PATH]

A node (`run.py seed-demo`, `run.py serve`, pinned to CPU 0) and, beside it on CPU 0, a bare
aiohttp "hello" server with the node's own TLS certificate (`bench/hello_server.py`); the load
generator (bench/common.py) on CPU 1. Each round, back to back:

* H  bare aiohttp `GET /` -> `web.json_response({"ok": true})` over the same TLS (baseline);
* G1 the node's `GET /healthz`: TLS + the whole middleware stack on a trivial route; goal >= 0.5 H;
* G2 the node's `GET /api/v1/me` with a resident's bearer token seen before (warm: the verified
  token cache); goal >= 0.5 H;
* G2 cold: the same read, every request with a token never seen before: valid tokens with the
  resident's claims and a fresh `jti`, minted before the run with the node's own signing key
  from the data dir (`SigningKeys`, `TokenIssuer`), enough for the window at the warm rate
  (a request that finds none left is counted as an error); goal >= 0.2 H.

Rounds interleave H, G1, G2, G2 cold (``bench.common.interleave``, >= 3); any answer but a 2xx
(in the baseline too) is an error and fails the figure; p50/p99 are over the 2xx answers.

G11: after the rounds, the node is stopped and started again on the same data dir, timed from
exec to the first 200 on `/healthz`, vs `python -c "import aiohttp.web, jwt, ..."` (the bare
import line of the reference, less `orjson` when it is not installed), interleaved; goal <= 2x.
Both run with bytecode caches, as an installed program does: a private `PYTHONPYCACHEPREFIX`
(written by one unmeasured start of each first), whatever `PYTHONDONTWRITEBYTECODE` says.
`--start-only` measures G11 alone.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.bench_open import log_in_residents
from bench.common import (
    ROOT,
    Goal,
    LoadPlan,
    LoadResult,
    Node,
    Target,
    figure,
    free_port,
    interleave,
    load_figure,
    load_in_subprocess,
    node_env,
    pinned,
    pinning_available,
    print_figures,
    running_node,
    seed_demo,
    stop,
    wait_healthy,
    write_json,
)

IMPORTS = (
    "aiohttp.web",
    "jwt",
    "cryptography.hazmat.primitives.asymmetric.ec",
    "redis.asyncio",
    "msgpack",
    "orjson",
)
IMPORT_LINE = "import " + ", ".join(
    m for m in IMPORTS if importlib.util.find_spec(m.split(".")[0]) is not None
)


def start_hello(node: Node, cpu: int | None) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    server = node.data_dir / "pki" / "server"
    argv = [
        sys.executable,
        str(ROOT / "bench" / "hello_server.py"),
        str(port),
        str(server / "cert.pem"),
        str(server / "key.pem"),
    ]
    process = subprocess.Popen(pinned(cpu, argv), cwd=ROOT, stdout=subprocess.DEVNULL)
    probe = Node(node.data_dir, port, process, node.log_path)
    wait_healthy_root(probe)
    return process, port


def wait_healthy_root(node: Node) -> None:
    """The hello server answers /healthz too (same probe as the node's)."""
    wait_healthy(node, 30.0)


def with_bytecode(env: dict[str, str], cache: Path) -> dict[str, str]:
    """``env`` with bytecode caches read and written under ``cache``."""
    env = {k: v for k, v in env.items() if k != "PYTHONDONTWRITEBYTECODE"}
    return dict(env, PYTHONPYCACHEPREFIX=str(cache))


def cold_start(data_dir: Path, env: dict[str, str], cpu: int | None) -> float:
    env = dict(env, PROPDEV_PORT=str(free_port()))
    env["PROPDEV_PUBLIC_URL"] = f"https://127.0.0.1:{env['PROPDEV_PORT']}"
    started = time.perf_counter()
    process = subprocess.Popen(
        pinned(cpu, [sys.executable, str(ROOT / "run.py"), "serve"]),
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    node = Node(data_dir, int(env["PROPDEV_PORT"]), process, data_dir / "serve.log")
    try:
        wait_healthy(node, 60.0)
        return time.perf_counter() - started
    finally:
        stop(process)


def import_line(cpu: int | None, env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(pinned(cpu, [sys.executable, "-c", IMPORT_LINE]), check=True, env=env)
    return time.perf_counter() - started


def start_times(
    data_dir: Path, env: dict[str, str], cpu: int | None, rounds: int
) -> tuple[list[float], list[float]]:
    """(node starts, import lines) in seconds, interleaved, after one unmeasured of each."""
    cache = data_dir / "pycache"
    env = with_bytecode(env, cache)
    import_line(cpu, env)
    cold_start(data_dir, env, cpu)
    runs = interleave(
        rounds,
        {"import": lambda: import_line(cpu, env), "start": lambda: cold_start(data_dir, env, cpu)},
    )
    return runs.results["start"], runs.results["import"]


def mint_fresh_tokens(env: dict[str, str], token: str, count: int) -> list[str]:
    """``count`` valid access tokens with ``token``'s claims, each with its own ``jti``, signed
    with the node's key (the data dir's ``pki/jwt``) as the node's token endpoint signs them."""
    import jwt

    from propdev.config import Settings
    from propdev.security import SigningKeys, TokenIssuer

    settings = Settings.from_env(env)
    issuer = TokenIssuer(settings, SigningKeys.load_or_create(settings.pki_dir / "jwt"))
    claims = jwt.decode(token, options={"verify_signature": False})
    return [
        issuer.issue_access_token(
            claims["sub"],
            claims["client_id"],
            claims["scope"],
            claims.get("roles", []),
            claims.get("amr", []),
        )
        for _ in range(count)
    ]


def run(args: argparse.Namespace) -> dict[str, Any]:
    pin = pinning_available()
    server_cpu, client_cpu = (0, 1) if pin else (None, None)
    runs: dict[str, list[LoadResult]] = {"H": [], "G1": [], "G2": [], "G2cold": []}
    with tempfile.TemporaryDirectory(prefix="propdev-bench-http-") as tmp:
        data_dir = Path(tmp)
        env = node_env(data_dir, free_port(), PROPDEV_ACCESS_TOKEN_TTL="900")
        credentials = seed_demo(env)
        if args.start_only:
            starts, imports = start_times(data_dir, env, server_cpu, args.rounds)
            return start_result(args, pin, starts, imports)
        with running_node(data_dir, env, cpu=server_cpu) as node:
            tokens = asyncio.run(log_in_residents(node.base_url, node.ca_cert, credentials))
            token = next(iter(tokens.values()))
            hello, hello_port = start_hello(node, server_cpu)
            try:

                def plan(port: int, target: Target, pid: int) -> LoadPlan:
                    return LoadPlan(
                        port=port,
                        ca_cert=str(node.ca_cert),
                        targets=[target],
                        connections=64,
                        warmup=1.0,
                        duration=args.duration,
                        server_pid=pid,
                    )

                plans = {
                    "H": plan(hello_port, Target("GET", "/"), hello.pid),
                    "G1": plan(node.port, Target("GET", "/healthz"), node.process.pid),
                    "G2": plan(
                        node.port,
                        Target("GET", "/api/v1/me", {"Authorization": f"Bearer {token}"}),
                        node.process.pid,
                    ),
                }
                me = plans["G2"].targets[0]

                def load(key: str) -> Any:
                    def step() -> LoadResult:
                        runs[key].append(load_in_subprocess(plans[key], cpu=client_cpu))
                        return runs[key][-1]

                    return step

                def cold() -> LoadResult:
                    # Never-seen tokens, enough for the window at the warm rate just measured.
                    warm = runs["G2"][-1].req_per_s if runs["G2"] else 1000.0
                    enough = int(warm * (1.0 + args.duration) * 1.5) + 500
                    fresh = mint_fresh_tokens(env, token, enough)
                    target = Target(me.method, me.path, fresh_bearer_tokens=fresh)
                    runs["G2cold"].append(
                        load_in_subprocess(
                            plan(node.port, target, node.process.pid), cpu=client_cpu
                        )
                    )
                    print(
                        f"  round {len(runs['G2cold'])}: "
                        + ", ".join(f"{k} {v[-1].req_per_s:,.0f}/s" for k, v in runs.items()),
                        file=sys.stderr,
                        flush=True,
                    )
                    return runs["G2cold"][-1]

                # H, G1, G2, G2cold, H, G1, ... (baseline first in every round); the steps
                # keep their results in ``runs`` too, where ``cold`` finds the warm rate
                interleave(
                    args.rounds,
                    {"H": load("H"), "G1": load("G1"), "G2": load("G2"), "G2cold": cold},
                )
            finally:
                stop(hello)
        starts, imports = start_times(data_dir, env, server_cpu, args.rounds)
    hello = "bare aiohttp hello, same TLS"
    figures = []
    for key, name, level in (
        ("G1", "middleware stack, GET /healthz", 0.5),
        ("G2", "authenticated read, warm token, GET /api/v1/me", 0.5),
        ("G2cold", "authenticated read, cold token (never seen), GET /api/v1/me", 0.2),
    ):
        figures.append(load_figure(key, name, runs[key], runs["H"], hello, Goal(level)))
        figures.append(
            load_figure(
                f"{key}c",
                "  per server core (noise-robust)",
                runs[key],
                runs["H"],
                "bare hello per core",
                Goal(level),
                per_core=True,
            )
        )
    figures.append(start_figure(starts, imports))
    return {
        "benchmark": "http",
        "rounds": args.rounds,
        "duration_s": args.duration,
        "pinned": pin,
        "loadavg": os.getloadavg(),
        "other_cpu_max": max(r.other_cpu for v in runs.values() for r in v),
        "figures": figures,
        "skipped": [],
    }


def start_figure(starts: list[float], imports: list[float]) -> dict[str, Any]:
    return figure(
        "G11",
        "cold start to first /healthz 200",
        [s * 1000 for s in starts],
        [s * 1000 for s in imports],
        "bare import line",
        "ms",
        Goal(2.0, higher=False),
    )


def start_result(
    args: argparse.Namespace, pin: bool, starts: list[float], imports: list[float]
) -> dict[str, Any]:
    return {
        "benchmark": "http",
        "rounds": args.rounds,
        "pinned": pin,
        "loadavg": os.getloadavg(),
        "figures": [start_figure(starts, imports)],
        "skipped": ["G1, G2: --start-only"],
    }


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=4.0)
    parser.add_argument("--quick", action="store_true", help="3 rounds of 3 s")
    parser.add_argument("--start-only", action="store_true", help="G11 alone")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.duration = 3, min(args.duration, 3.0)
    result = run(args)
    print_figures(result["figures"])
    write_json(args.json, result)


if __name__ == "__main__":
    cli()
