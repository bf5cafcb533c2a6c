"""One actor: ordering, ask and tell semantics, mailbox bounds, lifecycle hooks."""

from __future__ import annotations

import asyncio

import pytest

from propdev.actors import (
    Actor,
    ActorError,
    ActorSystem,
    Address,
    AskTimeout,
    MailboxFull,
)
from tests.unit.actors.conftest import Crash, Gate, running


class Serial(Actor):
    """Awaits inside receive and records overlap: `active` must never exceed one."""

    def __init__(self, gate: Gate, log: list[object], peak: list[int]) -> None:
        self.gate = gate
        self.log = log
        self.peak = peak
        self.active = 0

    async def receive(self, message: object) -> object:
        self.active += 1
        self.peak[0] = max(self.peak[0], self.active)
        if message == 0:
            self.gate.entered.set()
            await self.gate.release.wait()
        await asyncio.sleep(0)
        self.log.append(message)
        self.active -= 1
        return message


async def test_messages_to_one_actor_are_handled_in_order_and_one_at_a_time() -> None:
    gate = Gate()
    handled: list[object] = []
    peak = [0]
    system = ActorSystem("n1", sweep_interval=float("inf"))
    system.register_kind("device", lambda address: Serial(gate, handled, peak))
    await system.start()
    try:
        for i in range(50):
            system.tell("device:1", i)
        blocked = await running(system.ask("device:1", "last"))
        await gate.entered.wait()
        assert handled == []  # message 0 holds the actor; nothing else overtook it
        gate.release.set()
        assert await blocked == "last"
        assert handled == [*range(50), "last"]
        assert peak == [1]
    finally:
        await system.stop()


async def test_ask_returns_what_receive_returned(system: ActorSystem) -> None:
    assert await system.ask("device:1", "hello") == 1
    assert await system.ask(Address("device", "1"), "again") == 2


async def test_ask_times_out_with_ask_timeout(system: ActorSystem) -> None:
    gate = Gate()
    system.tell("device:1", gate)
    with pytest.raises(AskTimeout) as caught:
        await system.ask("device:1", "count", timeout=0.01)
    assert isinstance(caught.value, TimeoutError)
    assert isinstance(caught.value, ActorError)
    assert "device:1" in str(caught.value)
    gate.release.set()
    assert await system.ask("device:1", "count") == 0


async def test_an_ask_failure_reaches_the_asker_and_does_not_restart_the_actor(
    system: ActorSystem, journal: list[tuple[str, str]]
) -> None:
    before = await system.ask("device:1", "instance")
    await system.ask("device:1", "one")
    with pytest.raises(Crash):
        await system.ask("device:1", "crash")
    assert await system.ask("device:1", "instance") == before
    assert await system.ask("device:1", "count") == 1  # state kept
    assert ("failure", "device:1") not in journal
    assert system.stats()["restarts"] == 0


async def test_tell_on_a_full_mailbox_raises_mailbox_full() -> None:
    gate = Gate()
    system = ActorSystem("n1", mailbox_capacity=3, sweep_interval=float("inf"))
    system.register_kind("device", lambda address: Serial(gate, [], [0]))
    await system.start()
    try:
        for i in range(3):
            system.tell("device:1", i)
        with pytest.raises(MailboxFull):
            system.tell("device:1", 3)
        snapshot = system.snapshot()["supervisors"][0]["actors"][0]
        assert (snapshot["mailbox_depth"], snapshot["mailbox_capacity"]) == (3, 3)
        gate.release.set()
    finally:
        await system.stop()


async def test_send_waits_for_room_instead_of_raising() -> None:
    gate = Gate()
    handled: list[object] = []
    system = ActorSystem("n1", mailbox_capacity=1, sweep_interval=float("inf"))
    system.register_kind("device", lambda address: Serial(gate, handled, [0]))
    await system.start()
    try:
        system.tell("device:1", 0)
        await gate.entered.wait()
        system.tell("device:1", 1)
        waiting = await running(system.send("device:1", 2))
        assert not waiting.done()
        gate.release.set()
        await waiting
        assert await system.ask("device:1", 3) == 3
        assert handled == [0, 1, 2, 3]
    finally:
        await system.stop()


async def test_lifecycle_hooks_run_in_order_with_address_set(
    system: ActorSystem, journal: list[tuple[str, str]], store: dict[str, int]
) -> None:
    await system.ask("device:7", "x")
    await system.stop()
    assert journal == [("start", "device:7"), ("stop", "device:7")]
    assert store == {"device:7": 1}


async def test_the_default_receive_rejects_messages_to_the_asker() -> None:
    system = ActorSystem("n1", sweep_interval=float("inf"))
    system.register_kind("device", lambda address: Actor())
    await system.start()
    try:
        with pytest.raises(NotImplementedError):
            await system.ask("device:1", "anything")
    finally:
        await system.stop()
