"""``/api/v1/ws``: a resident's live events, with replay of what was missed (``?after=ID``).

The socket is attached to the resident's SessionActor before the replay is read, and live
events that arrive during the replay wait behind it, so nothing is lost or reordered; an event
is never sent twice on one socket (ids only grow).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import structlog
from aiohttp import WSCloseCode, WSMsgType, web

from propdev.actors.messages import Attach, Detach
from propdev.http.keys import NODE
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
        "`?after=ID` first replays what was missed. Text `ping` is answered `pong`."
    ),
    tags=["resident"],
    websocket=True,
    query=[Param("after", {"type": "integer", "minimum": 0})],
    headers=[Param("Sec-WebSocket-Protocol", description="`bearer, <token>`")],
    responses={101: None, 400: "Not a WebSocket upgrade request."},
)
async def websocket(request: web.Request) -> web.WebSocketResponse:
    node = request.app[NODE]
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
        request.app[LIVE_SOCKETS].add(ws)  # closed with a reconnect hint when the node drains
        session = f"session:{caller.sub}"
        conn = Connection(ws, last_id=max(after, 0))
        await node.system.ask(session, Attach(conn))
    except BaseException:
        if caps is not None:
            caps.release(caller.sub)
        raise
    channel = f"user:{caller.sub}"
    log.info("ws_connected", actor=session)
    try:
        await node.bus.listen(channel)  # in a cluster: this node now hears the resident's events

        async def pages() -> Any:
            if after < 0:
                return
            cursor = after
            while True:
                batch = await node.events.page(caller.sub, after=cursor, limit=REPLAY_PAGE)
                for event in batch:
                    yield event
                if len(batch) < REPLAY_PAGE:
                    return
                cursor = int(batch[-1]["id"])

        await conn.replay(pages())
        async for msg in ws:
            if msg.type == WSMsgType.TEXT and msg.data == "ping":
                await ws.send_str("pong")
            elif msg.type == WSMsgType.ERROR:
                break
    finally:
        request.app[LIVE_SOCKETS].discard(ws)
        if caps is not None:
            caps.release(caller.sub)
        node.system.tell(session, Detach(conn))
        node.bus.unlisten(channel)
        log.info("ws_disconnected", actor=session)
    return ws


LIVE_SOCKETS: web.AppKey[set[web.WebSocketResponse]] = web.AppKey("live_websockets")
"""The node's open WebSockets (``set[web.WebSocketResponse]``)."""


async def close_sockets(app: web.Application) -> None:
    """``on_shutdown`` (SIGTERM/SIGINT): close every socket with 1012 "service restart", the
    hint to reconnect (to another node; ``?after=ID`` replays what it missed meanwhile)."""
    sockets: list[web.WebSocketResponse] = [*app[LIVE_SOCKETS]]
    with contextlib.suppress(Exception):
        await asyncio.gather(
            *(
                ws.close(code=WSCloseCode.SERVICE_RESTART, message=b"service restart")
                for ws in sockets
            ),
            return_exceptions=True,
        )
    if sockets:
        log.info("ws_drained", sockets=len(sockets))
