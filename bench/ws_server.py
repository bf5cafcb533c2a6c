"""The WebSocket server side of bench_ws: our node's ``/api/v1/ws`` or a bare aiohttp hub.

    python bench/ws_server.py node|bare PORT RESIDENTS    (settings from PROPDEV_* variables)

``node``: the node as ``propdev.node.serve`` wires it (``Node``, ``make_app``, the server
limits, the capped TLS site), in this process so that the broadcast can be timed inside it;
prints one JSON line with the port and a bearer token per resident (minted by the node's own
``TokenIssuer``). ``bare``: ``web.WebSocketResponse()`` in a handler that only reads, over the
same TLS certificate and the same TLS transport (``propdev.http.tls_transport``). Then it
answers JSON commands on stdin, one per line:

* ``{"cmd": "rss"}`` -> ``{"rss": bytes, "sockets": n}`` (after a garbage collection);
* ``{"cmd": "broadcast", "rounds": R}`` (node only) -> per round, the server loop's time for
  one event to every socket: ``bare_ms``, a sequential ``await ws.send_str(payload)`` over the
  node's live sockets, and ``ours_ms``, the event published on each resident's channel of the
  node's bus (``Node._to_session`` -> ``SessionActor`` -> ``Connection.send_json`` per socket),
  until every resident's session actor has handled it (a ``SessionPresence`` ask behind it);
* ``{"cmd": "quit"}``.
"""

from __future__ import annotations

import asyncio
import gc
import ipaddress
import json
import resource
import sys
import time
from pathlib import Path
from typing import Any

from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

EVENT = {
    "type": "access.granted",
    "access_point_id": "ap-entrance-a",
    "command_id": "3f1f8f5e-1b7a-4f5e-9d55-8e2b1c0a9f00",
    "occurred_at": 1_700_000_000.123,
    "data": {"via": "app", "building": "b-1", "name": "Entrance A, building 1"},
}


def raise_fd_limit() -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def rss_bytes() -> int:
    gc.collect()
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def say(data: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(data) + "\n")
    sys.stdout.flush()


async def commands(handle: Any) -> None:
    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line:
            return
        command = json.loads(line)
        if command["cmd"] == "quit":
            return
        say(await handle(command))


async def bare(port: int, cert: Path, key: Path) -> None:
    import ssl

    from propdev.http.tls_transport import lean_tls_factory

    sockets: set[web.WebSocketResponse] = set()

    async def hub(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        sockets.add(ws)
        try:
            async for _ in ws:
                pass
        finally:
            sockets.discard(ws)
        return ws

    app = web.Application()
    app.router.add_get("/ws", hub)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    assert runner.server is not None
    # The node's TLS transport (no read buffer per connection), so that G8 compares what the
    # node adds over a bare hub on the same TLS, not two TLS stacks.
    listener = await asyncio.get_running_loop().create_server(
        lean_tls_factory(runner.server, context), "127.0.0.1", port, backlog=1024
    )
    say({"port": port, "path": "/ws", "tokens": []})

    async def handle(command: dict[str, Any]) -> dict[str, Any]:
        return {"rss": rss_bytes(), "sockets": len(sockets)}

    try:
        await commands(handle)
    finally:
        listener.close()
        await runner.cleanup()


async def node(port: int, residents: int) -> None:
    from propdev.actors.messages import SessionPresence
    from propdev.config import Settings
    from propdev.http.app import make_app
    from propdev.http.connections import CappedTCPSite, ConnectionCap
    from propdev.http.limits import server_limits
    from propdev.http.ws import LIVE_SOCKETS
    from propdev.node import Node
    from propdev.observability import configure_logging
    from propdev.pki import ensure_ca, ensure_server_cert, server_context

    settings = Settings.from_env()
    configure_logging(settings.log_level, node_id=settings.node_id)
    ensure_ca(settings.pki_dir)
    cert = ensure_server_cert(settings.pki_dir, ("127.0.0.1", "localhost"))
    the_node = Node(settings)
    await the_node.start()
    app = make_app(the_node)
    runner = web.AppRunner(
        app, access_log=None, handle_signals=False, **server_limits(header_timeout=30.0)
    )
    await runner.setup()
    cap = ConnectionCap(
        settings.connections_per_ip,
        exempt=[ipaddress.ip_network(c) for c in settings.connections_exempt],
    )
    ssl_context = server_context(settings.pki_dir, cert)
    site = CappedTCPSite(runner, "127.0.0.1", port, ssl_context=ssl_context, backlog=1024, cap=cap)
    await site.start()
    subs = [f"bench-resident-{n}" for n in range(residents)]
    tokens = [
        the_node.issuer.issue_access_token(
            sub, "bench", "openid profile api", ["resident"], ["pwd"]
        )
        for sub in subs
    ]
    say({"port": port, "path": "/api/v1/ws", "tokens": tokens})
    next_id = 0

    async def broadcast(rounds: int) -> dict[str, Any]:
        nonlocal next_id
        live: set[web.WebSocketResponse] = app[LIVE_SOCKETS]
        sockets = list(live)
        bare_ms, ours_ms = [], []
        for _ in range(rounds):
            next_id += 1
            payload = json.dumps({"id": next_id, **EVENT})
            started = time.perf_counter()
            for ws in sockets:
                await ws.send_str(payload)
            bare_ms.append((time.perf_counter() - started) * 1000)
            await asyncio.sleep(0.2)  # let the clients drain before the next round
            next_id += 1
            event = {"id": next_id, **EVENT}
            started = time.perf_counter()
            for sub in subs:
                await the_node.bus.publish(f"user:{sub}", event)
            for sub in subs:  # behind the Deliver in each session's mailbox
                await the_node.system.ask(f"session:{sub}", SessionPresence())
            ours_ms.append((time.perf_counter() - started) * 1000)
            await asyncio.sleep(0.2)
        return {"sockets": len(sockets), "bare_ms": bare_ms, "ours_ms": ours_ms}

    async def handle(command: dict[str, Any]) -> dict[str, Any]:
        if command["cmd"] == "broadcast":
            return await broadcast(int(command["rounds"]))
        return {"rss": rss_bytes(), "sockets": len(app[LIVE_SOCKETS])}

    try:
        await commands(handle)
    finally:
        await runner.cleanup()
        await the_node.stop()


def main() -> None:
    mode, port, residents = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    raise_fd_limit()
    if mode == "node":
        asyncio.run(node(port, residents))
    else:
        pki = Path(sys.argv[4])
        asyncio.run(bare(port, pki / "server" / "cert.pem", pki / "server" / "key.pem"))


if __name__ == "__main__":
    main()
