"""``/api/v1/ws``: a resident's live events, with replay of what was missed (``?after=ID``).

The socket is attached to the resident's SessionActor before the replay is read, and live
events that arrive during the replay wait behind it, so nothing is lost or reordered; an event
is never sent twice on one socket (ids only grow).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass, field
from typing import Any

import structlog
from aiohttp import WSCloseCode, WSMsgType, web

from propdev.actors.messages import Attach, Detach
from propdev.http.keys import ACTOR_SYSTEM, BUS, EVENTS, WS_BINDINGS
from propdev.http.limits import WS_CAPS
from propdev.http.middlewares import principal
from propdev.http.openapi import Param, doc
from propdev.http.permissions import Permission, requires
from propdev.http.routes.resident import int_param

log = structlog.get_logger()
routes = web.RouteTableDef()

MAX_MESSAGE = 16 * 1024
REPLAY_PAGE = 200


class Connection:
    """One socket as the session actor sees it: ordered, de-duplicated sends."""

    __slots__ = ("_held", "_lock", "last_id", "ws")

    def __init__(self, ws: web.WebSocketResponse, last_id: int) -> None:
        self.ws = ws
        self.last_id = last_id
        self._lock = asyncio.Lock()
        # live events held during the replay, with their encoding
        self._held: list[tuple[dict[str, Any], str | None]] | None = []

    async def send_json(self, event: dict[str, Any], text: str | None = None) -> None:
        """Send ``event``; ``text`` is its JSON when the caller encoded it once for many
        sockets."""
        if self._held is not None:
            self._held.append((event, text))
            return
        async with self._lock:
            await self._send(event, text)

    async def _send(self, event: dict[str, Any], text: str | None = None) -> None:
        event_id = int(event.get("id", 0))
        if event_id and event_id <= self.last_id:
            return
        if self.ws.closed:
            raise ConnectionError("socket closed")
        await self.ws.send_str(json.dumps(event) if text is None else text)
        if event_id:
            self.last_id = event_id

    async def replay(self, pages: Any) -> None:
        async with self._lock:
            async for event in pages:
                await self._send(event)
            held, self._held = self._held or [], None
            for event, text in held:
                await self._send(event, text)


@routes.get("/api/v1/ws")
@requires(Permission.RESIDENT)
@doc(
    "My live events over a WebSocket",
    description=(
        "Token in the `Authorization` header or as the subprotocol pair `bearer, <token>`. "
        'The server pushes `{"id", "type", ...}` JSON for every event of this resident; '
        "`?after=ID` first replays what was missed. Text `ping` is answered `pong`. "
        "Closes with code 4401 when the token expires (`token expired`) or once a revocation "
        "covers it (`token revoked`: the token, the session, the resident moved out); "
        "1012 when the node restarts."
    ),
    tags=["resident"],
    websocket=True,
    query=[Param("after", {"type": "integer", "minimum": 0})],
    headers=[Param("Sec-WebSocket-Protocol", description="`bearer, <token>`")],
    responses={101: None, 400: "Not a WebSocket upgrade request."},
)
async def websocket(request: web.Request) -> web.WebSocketResponse:
    system, bus, store = request.app[ACTOR_SYSTEM], request.app[BUS], request.app[EVENTS]
    caller = principal(request)
    after = int_param(request, "after", -1, lo=0, hi=2**62)
    ws = web.WebSocketResponse(
        protocols=("bearer",), heartbeat=30.0, max_msg_size=MAX_MESSAGE, compress=False
    )
    caps = request.app.get(WS_CAPS)
    if caps is not None:
        caps.acquire(caller.sub)  # 429 before the upgrade past the per-user cap
    try:
        await ws.prepare(request)
        live = Live()  # drained by the node: close with a reconnect hint
        request.app[LIVE_SOCKETS][ws] = live
        session = f"session:{caller.sub}"
        conn = Connection(ws, last_id=max(after, 0))
        await system.ask(session, Attach(conn))
    except BaseException:
        if caps is not None:
            caps.release(caller.sub)
        raise
    # closed (4401) when the token expires or a revocation covering it is heard
    bound = request.app[WS_BINDINGS].bind(caller.claims, live.close_with)
    channel = f"user:{caller.sub}"
    log.info("ws_connected", actor=session)
    try:
        await bus.listen(channel)  # in a cluster: this node now hears the resident's events

        async def pages() -> Any:
            if after < 0:
                return
            cursor = after
            while True:
                if live.drain.is_set():
                    return  # closing (the token ended, the node drains): no more replay
                batch = await store.page(caller.sub, after=cursor, limit=REPLAY_PAGE)
                for event in batch:
                    yield event
                if len(batch) < REPLAY_PAGE:
                    return
                cursor = int(batch[-1]["id"])

        await conn.replay(pages())
        await _talk(ws, live)
    finally:
        request.app[LIVE_SOCKETS].pop(ws, None)
        request.app[WS_BINDINGS].unbind(bound)
        live.closed.set()
        if caps is not None:
            caps.release(caller.sub)
        system.tell(session, Detach(conn))
        bus.unlisten(channel)
        log.info("ws_disconnected", actor=session)
    return ws


async def _talk(ws: web.WebSocketResponse, live: Live) -> None:
    """Answer the client's pings until it leaves, or until the node drains or the token ends:
    then close with 1012 "service restart" (4401 when the token ended: ``live.close_with``)
    from here, the socket's reading task, so that ``close`` waits for the client's closing
    frame before the transport goes (closed from another task while this one reads, aiohttp
    drops the transport at once, and a client still holding the 1012 frame unread may lose it
    to the reset, seeing 1006)."""
    draining = asyncio.ensure_future(live.drain.wait())
    try:
        while True:
            receiving = asyncio.ensure_future(ws.receive())
            await asyncio.wait((receiving, draining), return_when=asyncio.FIRST_COMPLETED)
            if not receiving.done():
                receiving.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await receiving
                await ws.close(code=live.code, message=live.reason.encode())
                return
            msg = receiving.result()
            if msg.type == WSMsgType.TEXT and msg.data == "ping":
                await ws.send_str("pong")
            elif msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED):
                return
            elif msg.type == WSMsgType.ERROR:
                return
    finally:
        draining.cancel()


@dataclass(slots=True)
class Live:
    """An open socket's handler: ``drain`` asks it to close (with ``code`` and ``reason``),
    ``closed`` says it has."""

    drain: asyncio.Event = field(default_factory=asyncio.Event)
    closed: asyncio.Event = field(default_factory=asyncio.Event)
    code: int = WSCloseCode.SERVICE_RESTART
    reason: str = "service restart"

    def close_with(self, code: int, reason: str) -> None:
        """Ask the handler to close with ``code`` (the first ask wins)."""
        if not self.drain.is_set():
            self.code, self.reason = code, reason
            self.drain.set()


LIVE_SOCKETS: web.AppKey[dict[web.WebSocketResponse, Live]] = web.AppKey("live_websockets")
"""The node's open WebSockets."""

DRAIN_WAIT = 15.0  # for the clients' closing frames (aiohttp's own close timeout is 10 s)


async def close_sockets(app: web.Application) -> None:
    """``on_shutdown`` (SIGTERM/SIGINT): close every socket with 1012 "service restart", the
    hint to reconnect (to another node; ``?after=ID`` replays what it missed meanwhile), and
    wait (bounded) until their handlers have closed them."""
    live = app[LIVE_SOCKETS]
    count = len(live)
    waits = []
    for handler in live.values():
        handler.drain.set()
        waits.append(asyncio.ensure_future(handler.closed.wait()))
    if waits:
        _, late = await asyncio.wait(waits, timeout=DRAIN_WAIT)
        for wait in late:
            wait.cancel()
    for ws in list(live):  # a handler that did not finish in time: close from here
        with contextlib.suppress(Exception):
            await ws.close(code=WSCloseCode.SERVICE_RESTART, message=b"service restart")
    if count:
        log.info("ws_drained", sockets=count)
