"""WebSocket benchmarks against a bare aiohttp hub measured in the same run (G8, G9).

    .venv/bin/python bench/bench_ws.py [--sockets 10000] [--rounds 5] [--quick] [--json PATH]

Servers on CPU 0 (`bench/ws_server.py`), one client process on CPU 1 holding every socket
(aiohttp, no permessage-deflate offered, every socket reading), TLS with the node's certificate
on both sides; the file-descriptor limit is raised to its hard limit in every process.

* G8 idle memory per connection: RSS growth of the server process over `--sockets` idle
  connections (after 20 warm-up ones), our node's `/api/v1/ws` (bearer token in the
  `Authorization` header; the sockets spread over residents, at most 1,000 each, the highest
  `PROPDEV_WS_PER_USER` allows) vs a bare aiohttp WebSocket hub, each in its own process;
  goal <= 1.5x; G8t is the same figure against issue #16's absolute goal, <= 20 KiB per
  socket (10,000 in < 200 MB). Both run on the node's TLS transport
  (``propdev.http.tls_transport``; the stdlib's asyncio TLS pins a 256 KiB read buffer per
  connection, ~290 KiB per socket in either server). ``--memory-rounds``
  (>= 3) server pairs, bare then node, interleaved (``bench.common.interleave``; the first
  node server is started first, as it makes the TLS certificate both use); the median ratio
  and its spread reported.
* G9 broadcast of one ~200-byte event to every socket of the node, timed inside the node's
  process: the event published on each resident's bus channel and fanned out by their
  `SessionActor` (`Connection.send_json` per socket: de-duplication, lock, JSON) until every
  session has handled it, vs a bare sequential `await ws.send_str(payload)` loop over the same
  sockets, rounds interleaved (``--rounds`` in each node server); goal <= 2x. An event a
  socket did not receive is an error and fails the figure. This is "few residents, many
  sockets each": the
  per-socket path of the design (an event reaches one resident's sockets); 10,000 residents
  with one socket each would add a bus publish and an actor hop per socket.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import ssl
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import IO, Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (
    ROOT,
    Goal,
    figure,
    free_port,
    interleave,
    node_env,
    pinned,
    pinning_available,
    print_figures,
    write_json,
)

TLS_SOCKET_GOAL_KIB = 20  # issue #16: 10,000 idle TLS WebSockets < 200 MB
PER_RESIDENT = 1000  # PROPDEV_WS_PER_USER's highest value
WARM = 20


class Proc:
    """A child process driven by JSON lines on stdin/stdout."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            argv, cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )

    def read(self) -> dict[str, Any]:
        out: IO[str] | None = self.process.stdout
        assert out is not None
        for _ in range(1000):  # bounded: the node's own log events share its stdout
            line = out.readline()
            if not line:
                raise RuntimeError(f"{self.process.args!r} ended ({self.process.poll()})")
            result: dict[str, Any] = json.loads(line)
            if "event" not in result or "level" not in result:  # a structlog line: skip it
                return result
        raise RuntimeError(f"{self.process.args!r}: no answer among 1000 log lines")

    def ask(self, command: dict[str, Any]) -> dict[str, Any]:
        stdin = self.process.stdin
        assert stdin is not None
        stdin.write(json.dumps(command) + "\n")
        stdin.flush()
        return self.read()

    def close(self) -> None:
        stdin = self.process.stdin
        if stdin is not None and not stdin.closed:
            try:
                stdin.write(json.dumps({"cmd": "quit"}) + "\n")
                stdin.close()
            except BrokenPipeError:
                pass
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def measure(
    mode: str, sockets: int, rounds: int, env: dict[str, str], cpus: tuple[int | None, int | None]
) -> dict[str, Any]:
    """Start a server of ``mode``, connect ``sockets`` idle clients, report RSS (and G9)."""
    server_cpu, client_cpu = cpus
    port = free_port()
    residents = -(-(sockets + WARM) // PER_RESIDENT)
    pki = Path(env["PROPDEV_DATA_DIR"]) / "pki"
    argv = [sys.executable, str(ROOT / "bench" / "ws_server.py"), mode, str(port), str(residents)]
    server = Proc(pinned(server_cpu, [*argv, str(pki)]), env)
    client = Proc(
        pinned(client_cpu, [sys.executable, str(Path(__file__).resolve()), "client"]), env
    )
    try:
        hello = server.read()
        plan = {"port": port, "path": hello["path"], "tokens": hello["tokens"], "ca": str(pki)}
        client.ask({"cmd": "connect", "count": WARM, **plan})
        before = server.ask({"cmd": "rss"})
        connected = client.ask({"cmd": "connect", "count": sockets, **plan})
        after = server.ask({"cmd": "rss"})
        if after["sockets"] != sockets + WARM or connected["open"] != sockets + WARM:
            raise RuntimeError(f"{mode}: {after['sockets']} sockets open, {connected}")
        result: dict[str, Any] = {
            "sockets": sockets,
            "rss_before": before["rss"],
            "rss_after": after["rss"],
            "kib_per_socket": (after["rss"] - before["rss"]) / sockets / 1024,
            "connect_s": connected["seconds"],
        }
        if mode == "node":
            result["broadcast"] = server.ask({"cmd": "broadcast", "rounds": rounds})
            received = client.ask({"cmd": "received"})
            result["received"] = received["messages"]
            # Every socket got every event of both loops: the fan-out really reached them.
            expected = result["broadcast"]["sockets"] * 2 * rounds
            result["all_received"] = received["messages"] == expected
            result["missed"] = max(0, expected - received["messages"])
        return result
    finally:
        client.close()
        server.close()


def run(args: argparse.Namespace) -> dict[str, Any]:
    pin = pinning_available()
    cpus = (0, 1) if pin else (None, None)
    with tempfile.TemporaryDirectory(prefix="propdev-bench-ws-") as tmp:
        data_dir = Path(tmp)
        env = node_env(
            data_dir,
            free_port(),
            PROPDEV_WS_PER_USER=str(PER_RESIDENT),
            PROPDEV_CONNECTIONS_EXEMPT="127.0.0.0/8",
        )
        # The node makes the CA and its certificate first; the bare hub then uses the same.
        first = measure("node", args.sockets, args.rounds, env, cpus)
        nodes = [first]
        steps = {
            "bare": lambda: measure("bare", args.sockets, args.rounds, env, cpus),
            "node": lambda: (
                nodes.pop() if nodes else measure("node", args.sockets, args.rounds, env, cpus)
            ),
        }
        runs = interleave(args.memory_rounds, steps).results
    node_runs, bare_runs = runs["node"], runs["bare"]
    node = node_runs[0]
    ours_ms = [ms for r in node_runs for ms in r["broadcast"]["ours_ms"]]
    bare_ms = [ms for r in node_runs for ms in r["broadcast"]["bare_ms"]]
    sockets = node["broadcast"]["sockets"]
    memory = figure(
        "G8",
        f"WebSocket idle memory per connection, /api/v1/ws ({args.sockets:,} sockets)",
        [r["kib_per_socket"] for r in node_runs],
        [r["kib_per_socket"] for r in bare_runs],
        "bare aiohttp WS hub, same TLS transport",
        "KiB",
        Goal(1.5, higher=False),
    )
    # Issue #16's goal, absolute: 10,000 idle TLS sockets in < 200 MB.
    memory_abs = figure(
        "G8t",
        "  the same, absolute (10,000 idle TLS sockets < 200 MB)",
        [r["kib_per_socket"] for r in node_runs],
        [r["kib_per_socket"] for r in bare_runs],
        "bare aiohttp WS hub, same TLS transport",
        "KiB",
        Goal(TLS_SOCKET_GOAL_KIB, higher=False, of="value", unit="KiB"),
    )
    broadcast = figure(
        "G9",
        f"broadcast of one event to {sockets:,} sockets (bus -> SessionActor)",
        ours_ms,
        bare_ms,
        "sequential ws.send_str loop, same sockets",
        "ms",
        Goal(2.0, higher=False),
        errors=sum(r["missed"] for r in node_runs),  # events a socket never received
        attempts=sum(r["broadcast"]["sockets"] * 2 * args.rounds for r in node_runs),
    )
    return {
        "benchmark": "ws",
        "sockets": args.sockets,
        "rounds": args.rounds,
        "pinned": pin,
        "loadavg": os.getloadavg(),
        "node": node_runs,
        "bare": bare_runs,
        "figures": [memory, memory_abs, broadcast],
    }


# -- the client process --------------------------------------------------------------------


async def client_main() -> None:
    import aiohttp

    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    loop = asyncio.get_running_loop()
    readers: list[asyncio.Task[None]] = []
    received = 0
    session: aiohttp.ClientSession | None = None

    async def hold(ws: aiohttp.ClientWebSocketResponse) -> None:
        nonlocal received
        async for _ in ws:
            received += 1

    async def connect(command: dict[str, Any]) -> dict[str, Any]:
        nonlocal session
        if session is None:
            context = ssl.create_default_context(cafile=str(Path(command["ca"]) / "ca.pem"))
            connector = aiohttp.TCPConnector(limit=0, ssl=context)
            session = aiohttp.ClientSession(connector=connector)
        url = f"https://127.0.0.1:{command['port']}{command['path']}"
        tokens = command["tokens"]
        gate = asyncio.Semaphore(100)
        started = loop.time()

        async def one(n: int) -> None:
            assert session is not None
            headers = {"Authorization": f"Bearer {tokens[n // PER_RESIDENT]}"} if tokens else {}
            async with gate:
                ws = await session.ws_connect(url, headers=headers, autoping=True)
            readers.append(asyncio.create_task(hold(ws)))

        first = len(readers)
        await asyncio.gather(*(one(n) for n in range(first, first + command["count"])))
        return {"open": len(readers), "seconds": loop.time() - started}

    try:
        while True:
            line = await loop.run_in_executor(None, sys.stdin.readline)
            if not line:
                return
            command = json.loads(line)
            if command["cmd"] == "quit":
                return
            if command["cmd"] == "connect":
                answer = await connect(command)
            else:  # received: wait until the in-flight frames have been read
                deadline = loop.time() + 30
                last = -1
                while received != last and loop.time() < deadline:
                    last = received
                    await asyncio.sleep(0.5)
                answer = {"messages": received}
            sys.stdout.write(json.dumps(answer) + "\n")
            sys.stdout.flush()
    finally:
        for task in readers:
            task.cancel()
        if session is not None:
            await session.close()


def cli() -> None:
    if sys.argv[1:2] == ["client"]:
        asyncio.run(client_main())
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sockets", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5, help="broadcasts per node server")
    parser.add_argument(
        "--memory-rounds", type=int, default=3, help="node/bare server pairs, at least 3"
    )
    parser.add_argument("--quick", action="store_true", help="3 broadcast rounds")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if args.quick:
        args.rounds = min(args.rounds, 3)
    result = run(args)
    print_figures(result["figures"])
    write_json(args.json, result)


if __name__ == "__main__":
    cli()
