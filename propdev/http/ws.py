"""``/api/v1/ws``: a resident's live events, with replay of what was missed (``?after=ID``).

The socket is attached to the resident's SessionActor before the replay is read, and live
events that arrive during the replay wait behind it, so nothing is lost or reordered; an event
is never sent twice on one socket (ids only grow).

An idle socket costs its connection and no more: one task (aiohttp's, running the handler),
no read buffer of its own under TLS (``propdev.http.tls_transport``), no compression. A client
that stops reading is not buffered for without end: past ``WRITE_CAP`` bytes waiting to be
written, its connection is aborted (it reconnects with ``?after=`` and replays what it missed),
and a send never waits for a slow client, so the session actor's other sockets go on.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
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

WRITE_CAP = 64 * 1024
"""Bytes a socket may have waiting to be written (above what the kernel holds) before a send
drops it as a slow consumer."""

PAUSE_AT = 4 * WRITE_CAP
"""The transport's high-water mark, well above ``WRITE_CAP``: aiohttp would make a send wait
for the client past it, and the cap drops the socket before that can happen."""


class SlowConsumerError(ConnectionError):
    """Raised when a socket's unsent bytes pass ``WRITE_CAP``; its connection is aborted."""


class Connection:
    """One socket as the session actor sees it: ordered, de-duplicated sends that never wait
    for a slow client (past ``WRITE_CAP`` unsent bytes the connection is aborted instead)."""

    __slots__ = ("_held", "_lock", "last_id", "transport", "ws")

    def __init__(
        self,
        ws: web.WebSocketResponse,
        last_id: int,
        transport: asyncio.Transport | None = None,
    ) -> None:
        self.ws = ws
        self.transport = transport
        if transport is not None:
            transport.set_write_buffer_limits(high=PAUSE_AT)
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
        transport = self.transport
        if transport is not None and transport.get_write_buffer_size() > WRITE_CAP:
            waiting = transport.get_write_buffer_size()
            transport.abort()  # what is buffered for it goes now, not when it reads
            raise SlowConsumerError(f"{waiting} bytes unsent: slow consumer dropped")
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
        live = Live(asyncio.current_task())  # drained by the node: close with a reconnect hint
        request.app[LIVE_SOCKETS][ws] = live
        session = f"session:{caller.sub}"
        transport = request.transport
        conn = Connection(
            ws,
            last_id=max(after, 0),
            transport=transport if isinstance(transport, asyncio.Transport) else None,
        )
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
                if live.draining:
                    return  # closing (the token ended, the node drains): no more replay
                batch = await store.page(caller.sub, after=cursor, limit=REPLAY_PAGE)
                for event in batch:
                    yield event
                if len(batch) < REPLAY_PAGE:
                    return
                cursor = int(batch[-1]["id"])

        try:
            await conn.replay(pages())
            await _talk(ws, live)
        except ConnectionError as exc:  # gone, or dropped as a slow consumer during the replay
            log.info("ws_send_failed", actor=session, error=str(exc))
    finally:
        request.app[LIVE_SOCKETS].pop(ws, None)
        request.app[WS_BINDINGS].unbind(bound)
        if caps is not None:
            caps.release(caller.sub)
        system.tell(session, Detach(conn))
        bus.unlisten(channel)
        log.info("ws_disconnected", actor=session)
    return ws


async def _talk(ws: web.WebSocketResponse, live: Live) -> None:
    """Answer the client's pings until it leaves, or until the node drains or the token ends:
    then close with 1012 "service restart" (4401 when the token ended: ``live.close_with``)
    from here, the socket's reading task, so that ``close`` waits for
    the client's closing frame before the transport goes (closed from another task while this
    one reads, aiohttp drops the transport at once, and a client still holding the 1012 frame
    unread may lose it to the reset, seeing 1006).

    The socket's only task waits in ``receive``; ``Live.drain`` interrupts that wait by
    cancelling it (a second task per socket to watch for the drain would cost as much memory
    as the rest of an idle socket's Python objects)."""
    while not live.draining:
        live.reading = True
        try:
            msg = await ws.receive()
        except asyncio.CancelledError:
            task = asyncio.current_task()
            # Only the drain's own cancellation is absorbed; any other one goes on.
            if not live.draining or task is None or task.uncancel() > 0:
                raise
            break
        finally:
            live.reading = False
        if msg.type == WSMsgType.TEXT and msg.data == "ping":
            await ws.send_str("pong")
        elif msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED):
            return
        elif msg.type == WSMsgType.ERROR:
            return
    await ws.close(code=live.code, message=live.reason.encode())


class Live:
    """An open socket's handler: ``drain`` or ``close_with`` asks it to close (with ``code``
    and ``reason``); ``task`` (the handler's own) ends when it has."""

    __slots__ = ("_cancelled", "code", "draining", "reading", "reason", "task")

    def __init__(self, task: asyncio.Task[Any] | None) -> None:
        self.task = task  # the handler's task, the socket's only one of ours
        self.reading = False  # the task waits in ws.receive()
        self.draining = False
        self._cancelled = False
        self.code: int = WSCloseCode.SERVICE_RESTART
        self.reason = "service restart"

    def drain(self) -> None:
        """The node drains: close with 1012 "service restart"."""
        self.close_with(WSCloseCode.SERVICE_RESTART, "service restart")

    def close_with(self, code: int, reason: str) -> None:
        """Ask the handler to close with ``code`` (the first ask wins)."""
        if self.draining:
            return
        self.code, self.reason = code, reason
        self.draining = True
        if self.reading and self.task is not None and not self._cancelled:
            self._cancelled = True
            self.task.cancel()


LIVE_SOCKETS: web.AppKey[dict[web.WebSocketResponse, Live]] = web.AppKey("live_websockets")
"""The node's open WebSockets."""

DRAIN_WAIT = 15.0  # for the clients' closing frames (aiohttp's own close timeout is 10 s)


async def close_sockets(app: web.Application) -> None:
    """``on_shutdown`` (SIGTERM/SIGINT): close every socket with 1012 "service restart", the
    hint to reconnect (to another node; ``?after=ID`` replays what it missed meanwhile), and
    wait (bounded) until their handlers have closed them."""
    live = app[LIVE_SOCKETS]
    count = len(live)
    handlers = []
    for handler in live.values():
        handler.drain()
        if handler.task is not None:
            handlers.append(handler.task)
    if handlers:
        await asyncio.wait(handlers, timeout=DRAIN_WAIT)
    for ws in list(live):  # a handler that did not finish in time: close from here
        with contextlib.suppress(Exception):
            await ws.close(code=WSCloseCode.SERVICE_RESTART, message=b"service restart")
    if count:
        log.info("ws_drained", sockets=count)
