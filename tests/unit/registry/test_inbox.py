"""Inboxes between nodes on the machine's Redis: asks answered, and a dead node's inbox swept
(its pending and unread entries handled by the sweeper, then its streams deleted)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from redis.asyncio import Redis

from propdev.actors.messages import DeviceSnapshot
from propdev.registry.errors import RemoteAskTimeout
from propdev.registry.inbox import Inbox, Serve
from propdev.registry.pipeline import Pipeliner
from tests.unit.registry.conftest import REDIS_URL

Make = Callable[[str, Serve], Awaitable[Inbox]]


@pytest.fixture
async def make(redis: tuple[Redis, str]) -> AsyncIterator[Make]:
    """``make(node_id, serve)``: a node's started inbox, on a Redis client of its own (as a
    node process has; a node's death cancels its blocked reads without touching the others')."""
    _, namespace = redis
    made: list[tuple[Inbox, Pipeliner, Redis]] = []

    async def inbox(node_id: str, serve: Serve) -> Inbox:
        client = Redis.from_url(REDIS_URL, socket_connect_timeout=2.0, socket_timeout=5.0)
        pipeliner = Pipeliner(client)
        pipeliner.start()
        box = Inbox(client, pipeliner, namespace=namespace, node_id=node_id, serve=serve)
        await box.start()
        made.append((box, pipeliner, client))
        return box

    yield inbox
    for box, pipeliner, client in made:
        await box.close()
        await pipeliner.close()
        await client.aclose()


def serving(name: str, served: list[str]) -> Serve:
    async def serve(target: str, message: object, left: float) -> object:
        served.append(target)
        return {"by": name, "target": target}

    return serve


async def test_an_ask_is_answered_by_the_nodes_inbox(make: Make) -> None:
    served: list[str] = []
    await make("b", serving("b", served))
    a = await make("a", serving("a", []))
    assert await a.ask("b", "device:1", DeviceSnapshot(), 5) == {"by": "b", "target": "device:1"}
    assert served == ["device:1"]


class HeldReads(Redis):
    """A node's Redis client whose stream reads wait for ``go``: the moment between two
    blocking reads of its replies, held open as long as a test needs."""

    go: asyncio.Event

    async def xread(self, *args: Any, **kwargs: Any) -> Any:
        await self.go.wait()
        return await super().xread(*args, **kwargs)


async def test_a_reply_landing_between_two_reads_is_not_lost(
    make: Make, redis: tuple[Redis, str]
) -> None:
    client, namespace = redis
    await make("b", serving("b", []))
    held = HeldReads.from_url(REDIS_URL, socket_connect_timeout=2.0, socket_timeout=5.0)
    held.go = asyncio.Event()
    pipeliner = Pipeliner(held)
    pipeliner.start()
    a = Inbox(held, pipeliner, namespace=namespace, node_id="a", serve=serving("a", []))
    await a.start()
    try:
        asked = asyncio.create_task(a.ask("b", "device:1", DeviceSnapshot(), 4))
        # b's reply is in a's replies stream before a's reader has issued a read.
        await _until(lambda: _length(client, f"{namespace}:replies:a", 1), within=4)
        held.go.set()
        assert await asked == {"by": "b", "target": "device:1"}
    finally:
        held.go.set()
        await a.close()
        await pipeliner.close()
        await held.aclose()


async def test_an_inbox_that_stops_accepting_answers_the_asks_it_holds_unread(
    make: Make, redis: tuple[Redis, str]
) -> None:
    client, namespace = redis
    a = await make("a", serving("a", []))
    pipeliner = Pipeliner(client)
    pipeliner.start()
    served: list[str] = []
    # b's inbox is never read: the asks in it are those that came after its last read.
    b = Inbox(client, pipeliner, namespace=namespace, node_id="b", serve=serving("b", served))
    try:
        asked = asyncio.create_task(a.ask("b", "device:1", DeviceSnapshot(), 10))
        await _until(lambda: _length(client, f"{namespace}:inbox:b", 1), within=10)

        await b.stop_accepting()

        assert await asked == {"by": "b", "target": "device:1"}
        assert served == ["device:1"]
    finally:
        await b.close()
        await pipeliner.close()


async def test_a_dead_nodes_inbox_is_handled_by_the_sweeper_then_deleted(
    make: Make, redis: tuple[Redis, str]
) -> None:
    client, namespace = redis
    entered = asyncio.Event()

    async def dies(target: str, message: object, left: float) -> object:
        entered.set()
        raise asyncio.CancelledError  # killed while handling: no reply, no acknowledgement

    b = await make("b", dies)
    swept: list[str] = []
    a = await make("a", serving("a", swept))
    c = await make("c", serving("c", []))
    taken = asyncio.create_task(c.ask("b", "device:taken", DeviceSnapshot(), 20))
    await asyncio.wait_for(entered.wait(), 10)
    await b.close()  # b is gone: one entry pending (taken, never acknowledged)
    unread = asyncio.create_task(c.ask("b", "device:unread", DeviceSnapshot(), 20))
    await _until(lambda: _length(client, f"{namespace}:inbox:b", 2), within=10)

    assert await a.sweep(("a", "c")) == ["b"]

    assert await taken == {"by": "a", "target": "device:taken"}
    assert await unread == {"by": "a", "target": "device:unread"}
    assert sorted(swept) == ["device:taken", "device:unread"]
    assert await client.exists(f"{namespace}:inbox:b", f"{namespace}:replies:b") == 0
    assert not await client.sismember(f"{namespace}:inboxes", "b")
    assert await client.exists(f"{namespace}:inbox:c") == 1  # a live member's is kept
    assert await a.sweep(("a", "c")) == []


async def test_a_live_members_inbox_is_never_deleted(make: Make, redis: tuple[Redis, str]) -> None:
    client, namespace = redis
    await make("b", serving("b", []))
    a = await make("a", serving("a", []))
    assert await a.sweep(("a", "b")) == []
    # Not in this sweeper's view yet, but its lease in Redis is live: the script refuses.
    await client.zadd(f"{namespace}:members", {"b": 2**50})
    assert await a.sweep(("a",)) == []
    assert await client.exists(f"{namespace}:inbox:b") == 1


async def test_an_entry_past_its_deadline_is_dropped_not_handled(
    make: Make, redis: tuple[Redis, str]
) -> None:
    client, namespace = redis
    b = await make("b", serving("b", []))
    await b.close()  # dead before reading anything
    swept: list[str] = []
    a = await make("a", serving("a", swept))
    with pytest.raises(RemoteAskTimeout):
        await a.ask("b", "device:late", DeviceSnapshot(), 0.2)
    assert await a.sweep(("a",)) == ["b"]
    assert swept == []
    assert await client.exists(f"{namespace}:inbox:b") == 0


async def _length(client: Redis, stream: str, n: int) -> bool:
    return int(await client.xlen(stream)) >= n


async def _until(check: Callable[[], Awaitable[Any]], *, within: float) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)
