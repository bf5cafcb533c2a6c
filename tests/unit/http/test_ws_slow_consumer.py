"""A resident's socket that stops reading: dropped past ``WRITE_CAP`` unsent bytes, never
waited for, so their other sockets keep getting every event (TLS, real sockets)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from propdev.actors import ActorSystem
from propdev.actors.messages import Attach, Deliver, SessionPresence
from propdev.actors.session import SessionActor
from propdev.http.connections import CappedTCPSite, ConnectionCap
from propdev.http.ws import PAUSE_AT, WRITE_CAP, Connection
from propdev.pki import client_context, ensure_ca, ensure_server_cert, server_context

EVENT_PADDING = "x" * 4000


async def test_a_socket_that_stops_reading_is_dropped_with_bounded_buffers_and_the_rest_go_on(
    tmp_path: Path,
) -> None:
    ensure_ca(tmp_path)
    cert = ensure_server_cert(tmp_path, ("127.0.0.1",))
    system = ActorSystem("n1", idle_timeout=60.0, mailbox_capacity=100, ask_timeout=30.0)
    system.register_kind("session", lambda address: SessionActor())
    await system.start()
    connections: list[Connection] = []

    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(compress=False)
        await ws.prepare(request)
        assert isinstance(request.transport, asyncio.Transport)
        conn = Connection(ws, 0, transport=request.transport)
        conn._held = None  # no replay: live events go straight out
        connections.append(conn)
        await system.ask("session:u1", Attach(conn))
        async for _ in ws:
            pass
        return ws

    app = web.Application()
    app.router.add_get("/ws", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = CappedTCPSite(
        runner,
        "127.0.0.1",
        0,
        ssl_context=server_context(tmp_path, cert),
        cap=ConnectionCap(0),
    )
    await site.start()
    connector = aiohttp.TCPConnector(ssl=client_context(tmp_path), limit=0)
    http = aiohttp.ClientSession(connector=connector)
    try:
        url = f"https://127.0.0.1:{site.port}/ws"
        reader = await http.ws_connect(url)
        stalled = await http.ws_connect(url)  # never read: its client stops reading the socket
        async with asyncio.timeout(30):
            while await system.ask("session:u1", SessionPresence()) < 2:
                pass  # each ask yields to the handlers, which attach their sockets
        received: list[int] = []
        last = asyncio.Event()

        async def read() -> None:
            async for msg in reader:
                received.append(json.loads(msg.data)["id"])
                if json.loads(msg.data)["type"] == "last":
                    last.set()

        reading = asyncio.create_task(read())
        fast, slow = connections
        assert slow.transport is not None
        size = 0
        peak = 0
        delivered = 0
        for event_id in range(1, 50_001):
            event: dict[str, Any] = {"id": event_id, "type": "t", "pad": EVENT_PADDING}
            size = len(json.dumps(event)) + 10
            attached = await system.ask("session:u1", Deliver(event))
            delivered = event_id
            if slow.transport.is_closing():
                break
            peak = max(peak, slow.transport.get_write_buffer_size())
            assert attached >= 2
        assert slow.transport.is_closing(), f"still open after {delivered} events"
        assert peak <= WRITE_CAP + size < PAUSE_AT  # never buffered past the cap (+ one event)
        # The reading socket keeps going and got every event, in order.
        assert await system.ask("session:u1", Deliver({"id": delivered + 1, "type": "last"})) == 1
        async with asyncio.timeout(30):
            await last.wait()
        assert received == list(range(1, delivered + 2))
        assert fast.transport is not None and not fast.transport.is_closing()
        reading.cancel()
        await stalled.close()
        await reader.close()
    finally:
        await http.close()
        await runner.cleanup()
        await system.stop()
