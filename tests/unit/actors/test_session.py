"""SessionActor: one resident's events fanned out to their sockets through ``Connection``."""

from __future__ import annotations

import json
from typing import Any

from propdev.actors import ActorSystem
from propdev.actors.messages import Attach, Deliver, Detach, SessionPresence
from propdev.actors.session import SessionActor
from propdev.http.ws import Connection


class FakeSocket:
    """What ``Connection`` needs of an aiohttp WebSocketResponse."""

    def __init__(self, *, broken: bool = False) -> None:
        self.closed = False
        self.broken = broken
        self.sent: list[str] = []

    async def send_str(self, data: str) -> None:
        if self.broken:
            raise ConnectionResetError("peer gone")
        self.sent.append(data)


def live(socket: FakeSocket, last_id: int = 0) -> Connection:
    conn = Connection(socket, last_id)  # type: ignore[arg-type]
    conn._held = None  # replay done: live events go straight out
    return conn


async def test_an_event_reaches_every_socket_once_encoded_and_a_dead_one_is_dropped() -> None:
    system = ActorSystem("n1", idle_timeout=60.0, mailbox_capacity=100, ask_timeout=5.0)
    system.register_kind("session", lambda address: SessionActor())
    await system.start()
    try:
        session = "session:u1"
        sockets = [FakeSocket(), FakeSocket(), FakeSocket(broken=True)]
        conns = [live(s) for s in sockets]
        for conn in conns:
            await system.ask(session, Attach(conn))
        event: dict[str, Any] = {"id": 7, "type": "access.granted", "access_point_id": "ap-1"}

        assert await system.ask(session, Deliver(event)) == 2  # the broken socket is dropped
        assert sockets[0].sent == sockets[1].sent == [json.dumps(event)]
        assert json.loads(sockets[0].sent[0]) == event
        assert await system.ask(session, SessionPresence()) == 2

        await system.ask(session, Deliver(event))  # the same id: never twice on one socket
        assert len(sockets[0].sent) == 1
        await system.ask(session, Detach(conns[0]))
        await system.ask(session, Deliver({"id": 8, "type": "access.exit"}))
        assert len(sockets[0].sent) == 1 and len(sockets[1].sent) == 2
    finally:
        await system.stop()


async def test_live_events_held_during_the_replay_follow_it_in_order_without_duplicates() -> None:
    socket = FakeSocket()
    conn = Connection(socket, last_id=0)  # type: ignore[arg-type]
    await conn.send_json({"id": 3, "type": "live"}, json.dumps({"id": 3, "type": "live"}))
    await conn.send_json({"id": 2, "type": "live-and-replayed"})
    assert socket.sent == []  # held while the replay has not run

    async def pages() -> Any:
        for n in (1, 2):
            yield {"id": n, "type": "replayed"}

    await conn.replay(pages())
    assert [json.loads(s)["id"] for s in socket.sent] == [1, 2, 3]
    assert json.loads(socket.sent[1])["type"] == "replayed"  # id 2 went once, from the store
