"""Asks an actor ``interleaves``: handled at once beside the message in progress, not queued
behind it; everything else keeps the mailbox's order, and lifecycle waits for them too."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from propdev.actors import Actor, ActorSystem, AskTimeout
from tests.unit.actors.conftest import Crash, Gate, running


@dataclass(frozen=True)
class Report:
    """A message the probe interleaves; ``gate`` (if any) holds its handler."""

    value: str
    gate: Gate | None = field(default=None, compare=False)


class Door(Actor):
    """Holds its mailbox on a ``Gate``; interleaves ``Report``s; logs what it handled."""

    def __init__(self, log: list[object], stopped: list[str]) -> None:
        self.log = log
        self.stopped = stopped

    def interleaves(self, message: object) -> bool:
        return isinstance(message, Report)

    async def receive(self, message: object) -> object:
        if isinstance(message, Gate):
            message.entered.set()
            await message.release.wait()
            self.log.append("gate")
            return "released"
        if isinstance(message, Report):
            if message.gate is not None:
                message.gate.entered.set()
                await message.gate.release.wait()
            if message.value == "crash":
                raise Crash("told to crash")
            self.log.append(message.value)
            return f"report {message.value}"
        self.log.append(message)
        return message

    async def on_stop(self) -> None:
        self.stopped.append(str(self.address))


@pytest.fixture
async def doors() -> AsyncIterator[tuple[ActorSystem, list[object], list[str]]]:
    log: list[object] = []
    stopped: list[str] = []
    system = ActorSystem("n1", sweep_interval=float("inf"), ask_timeout=5.0)
    system.register_kind("device", lambda address: Door(log, stopped))
    await system.start()
    try:
        yield system, log, stopped
    finally:
        await system.stop()


async def test_an_interleaved_ask_is_answered_while_another_message_holds_the_actor(
    doors: tuple[ActorSystem, list[object], list[str]],
) -> None:
    system, log, _ = doors
    gate = Gate()
    held = await running(system.ask("device:1", gate))
    await gate.entered.wait()
    queued = await running(system.ask("device:1", "after the gate"))

    assert await system.ask("device:1", Report("jammed")) == "report jammed"
    assert log == ["jammed"]  # beside the gate, ahead of the queued ask
    assert not held.done() and not queued.done()

    gate.release.set()
    assert await held == "released"
    assert await queued == "after the gate"
    assert log == ["jammed", "gate", "after the gate"]


async def test_a_tell_of_an_interleaved_kind_keeps_the_mailbox_order(
    doors: tuple[ActorSystem, list[object], list[str]],
) -> None:
    system, log, _ = doors
    gate = Gate()
    held = await running(system.ask("device:1", gate))
    await gate.entered.wait()
    system.tell("device:1", Report("told"))
    queued = await running(system.ask("device:1", "asked"))
    gate.release.set()
    assert await queued == "asked"
    await held
    assert log == ["gate", "told", "asked"]


async def test_an_interleaved_failure_goes_to_its_asker_and_the_actor_carries_on(
    doors: tuple[ActorSystem, list[object], list[str]],
) -> None:
    system, log, _ = doors
    gate = Gate()
    held = await running(system.ask("device:1", gate))
    await gate.entered.wait()
    with pytest.raises(Crash):
        await system.ask("device:1", Report("crash"))
    gate.release.set()
    assert await held == "released"
    assert await system.ask("device:1", "still here") == "still here"
    assert log == ["gate", "still here"]


async def test_an_interleaved_ask_still_times_out(
    doors: tuple[ActorSystem, list[object], list[str]],
) -> None:
    system, _, _ = doors
    gate, stuck = Gate(), Gate()
    held = await running(system.ask("device:1", gate))
    await gate.entered.wait()
    with pytest.raises(AskTimeout):
        await system.ask("device:1", Report("slow", stuck), timeout=0.01)
    stuck.release.set()
    gate.release.set()
    assert await held == "released"


async def test_an_actor_with_an_interleaved_ask_in_progress_is_busy_and_stops_after_it(
    doors: tuple[ActorSystem, list[object], list[str]],
) -> None:
    system, log, stopped = doors
    gate, beside = Gate(), Gate()
    held = await running(system.ask("device:1", gate))
    await gate.entered.wait()
    report = await running(system.ask("device:1", Report("late", beside)))
    await beside.entered.wait()
    gate.release.set()
    assert await held == "released"

    assert await system.passivate_matching(lambda address: True, within=0) == 0  # still busy
    assert stopped == []
    stopping = await running(system.passivate_matching(lambda address: True, within=30))
    beside.release.set()
    assert await report == "report late"
    assert await stopping == 1
    assert stopped == ["device:1"]
    assert log == ["gate", "late"]
    assert not system.is_active("device:1")
