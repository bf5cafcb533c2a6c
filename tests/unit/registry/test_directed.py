"""Directed channels: a resident's events reach only the nodes that hold one of their sockets."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.unit.registry.conftest import Buses
from tests.unit.registry.test_bus import subscribed


class Inbox:
    def __init__(self) -> None:
        self.got: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue()

    async def __call__(self, channel: str, message: dict[str, Any]) -> None:
        await self.got.put((channel, message))

    async def next(self) -> tuple[str, dict[str, Any]]:
        return await asyncio.wait_for(self.got.get(), 5)


async def marker(buses: Buses, inbox: Inbox) -> None:
    """Publish a broadcast marker and wait for it: everything published before has arrived."""
    await buses.first.publish("revoked:marker", {"m": 1})
    while (await inbox.next())[0] != "revoked:marker":
        pass


async def test_a_node_hears_a_resident_only_while_it_listens(buses: Buses) -> None:
    inbox = Inbox()
    buses.second.subscribe("user:", inbox)
    buses.second.subscribe("revoked:", inbox)
    await subscribed(buses)

    await buses.first.publish("user:7", {"n": 1})  # nobody on the second node listens yet
    if buses.remote:
        await marker(buses, inbox)
        assert inbox.got.empty()
    else:  # one process: every channel is heard
        assert await inbox.next() == ("user:7", {"n": 1})

    await buses.second.listen("user:7")
    await buses.first.publish("user:7", {"n": 2})
    assert await inbox.next() == ("user:7", {"n": 2})

    buses.second.unlisten("user:7")
    await buses.first.publish("user:7", {"n": 3})
    if buses.remote:
        await marker(buses, inbox)
        assert inbox.got.empty()


async def test_interest_is_counted_per_socket(buses: Buses) -> None:
    inbox = Inbox()
    buses.second.subscribe("user:", inbox)
    await subscribed(buses)
    await buses.second.listen("user:5")
    await buses.second.listen("user:5")  # a second socket of the same resident
    buses.second.unlisten("user:5")  # one closes: the other still hears
    await buses.first.publish("user:5", {"n": 1})
    assert await inbox.next() == ("user:5", {"n": 1})


async def test_audience_counts_the_other_nodes_that_listen(buses: Buses) -> None:
    await subscribed(buses)
    assert await buses.first.audience("user:3") == 0
    await buses.second.listen("user:3")
    expected = 1 if buses.remote else 0
    assert await buses.first.audience("user:3") == expected
    assert await buses.second.audience("user:3") == 0  # its own subscription is not counted
    buses.second.unlisten("user:3")
    if buses.remote:
        for _ in range(500):  # the UNSUBSCRIBE is sent by a task
            if await buses.first.audience("user:3") == 0:
                break
            await asyncio.sleep(0.01)
        assert await buses.first.audience("user:3") == 0


async def test_local_only_handlers_hear_only_what_this_node_publishes(buses: Buses) -> None:
    local = Inbox()
    everything = Inbox()
    buses.second.subscribe("user:", local, local_only=True)
    buses.second.subscribe("user:", everything)
    await subscribed(buses)
    await buses.second.listen("user:8")
    await buses.first.publish("user:8", {"from": "first"})
    assert await everything.next() == ("user:8", {"from": "first"})
    await buses.second.publish("user:8", {"from": "second"})
    assert await everything.next() == ("user:8", {"from": "second"})
    first = await local.next()
    if buses.remote:
        assert first == ("user:8", {"from": "second"})
    else:  # one process: both publishes are local
        assert first == ("user:8", {"from": "first"})
