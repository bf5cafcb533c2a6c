"""SessionActor: one per resident with live connections; pushes their events to every socket.

A connection that fails to take a message is dropped from the session (the client reconnects
with ``?after=`` and replays what it missed), so one dead socket never blocks the others.
"""

from __future__ import annotations

import json
from typing import Any

import structlog

from propdev.actors.actor import Actor
from propdev.actors.messages import Attach, Deliver, Detach, SessionPresence

log = structlog.get_logger()


class SessionActor(Actor):
    """Lifecycle: on_start (no durable state) -> Attach/Deliver/Detach -> on_stop closes nothing.

    Connections belong to the HTTP layer; the actor only fans out to them.
    """

    def __init__(self) -> None:
        super().__init__()
        self.connections: set[Any] = set()

    def may_passivate(self) -> bool:
        return not self.connections

    async def receive(self, message: object) -> object:
        if isinstance(message, Deliver):
            await self._deliver(message.event)
            return len(self.connections)
        if isinstance(message, Attach):
            self.connections.add(message.connection)
            return len(self.connections)
        if isinstance(message, Detach):
            self.connections.discard(message.connection)
            return len(self.connections)
        if isinstance(message, SessionPresence):
            return len(self.connections)
        raise TypeError(f"SessionActor cannot handle {type(message).__name__}")

    async def _deliver(self, event: dict[str, Any]) -> None:
        dead = []
        text = json.dumps(event)  # encoded once for all of the resident's sockets
        for conn in self.connections:
            try:
                await conn.send_json(event, text)
            except (ConnectionError, RuntimeError) as exc:
                log.info("session_socket_dropped", actor=str(self.address), error=str(exc))
                dead.append(conn)
        for conn in dead:
            self.connections.discard(conn)
