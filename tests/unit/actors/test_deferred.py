"""Deferred replies: a handler answers an ask later and goes on with its mail meanwhile; what
the actor still owes when it stops or crashes is answered, never left to hang."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from propdev.actors import Actor, ActorStoppedError, ActorSystem, AskTimeout, Deferred
from propdev.supervision import Backoff, RestartIntensity
from tests.unit.actors.conftest import Crash, FakeClock, running


@dataclass(frozen=True)
class Later:
    """Answered once a ``Settle`` with the same name comes."""

    name: str


@dataclass(frozen=True)
class Settle:
    name: str
    value: object = None
    error: Exception | None = None


class Waiter(Actor):
    """Owes a reply per ``Later``; ``on_stop``/``on_failure`` answer with ``farewell`` if set."""

    def __init__(self, log: list[object], farewell: object) -> None:
        self.log = log
        self.farewell = farewell
        self.owed: dict[str, Deferred[object]] = {}

    async def receive(self, message: object) -> object:
        if isinstance(message, Later):
            reply: Deferred[object] = Deferred()
            self.owed[message.name] = reply
            return reply
        if isinstance(message, Settle):
            reply = self.owed.pop(message.name)
            if message.error is not None:
                reply.fail(message.error)
            else:
                reply.resolve(message.value)
            return None
        if message == "crash":
            raise Crash("told to crash")
        if message == "tell me later":
            return Deferred()  # to a tell: nobody to answer
        self.log.append(message)
        return message

    def _goodbye(self) -> None:
        if self.farewell is not None:
            for reply in self.owed.values():
                reply.resolve(self.farewell)

    async def on_stop(self) -> None:
        self._goodbye()

    async def on_failure(self, exc: BaseException, message: object) -> None:
        self._goodbye()


@dataclass
class Rig:
    system: ActorSystem
    clock: FakeClock
    log: list[object]
    farewell: list[object]  # [value]: what the next instances answer at a stop


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    clock = FakeClock()
    log: list[object] = []
    farewell: list[object] = [None]
    system = ActorSystem(
        "n1",
        idle_timeout=60.0,
        ask_timeout=5.0,
        clock=clock,
        sweep_interval=float("inf"),
        backoff=Backoff(initial=0),
        kind_intensity=RestartIntensity(intensity=20, period=10.0),
    )
    system.register_kind("door", lambda address: Waiter(log, farewell[0]))
    await system.start()
    try:
        yield Rig(system, clock, log, farewell)
    finally:
        await system.stop()


async def test_a_deferred_reply_comes_later_and_the_mailbox_goes_on_meanwhile(rig: Rig) -> None:
    system = rig.system
    asked = await running(system.ask("door:1", Later("a")))

    assert await system.ask("door:1", "next") == "next"  # not queued behind the owed reply
    assert rig.log == ["next"]
    assert not asked.done()

    system.tell("door:1", Settle("a", "opened"))
    assert await asked == "opened"


async def test_a_deferred_failure_goes_to_the_asker_and_the_actor_carries_on(rig: Rig) -> None:
    system = rig.system
    asked = await running(system.ask("door:1", Later("a")))
    system.tell("door:1", Settle("a", error=ValueError("vendor said no")))

    with pytest.raises(ValueError, match="vendor said no"):
        await asked
    assert await system.ask("door:1", "still here") == "still here"


async def test_two_replies_owed_at_once_are_answered_each_in_its_turn(rig: Rig) -> None:
    system = rig.system
    first = await running(system.ask("door:1", Later("a")))
    second = await running(system.ask("door:1", Later("b")))
    system.tell("door:1", Settle("b", 2))
    assert await second == 2
    assert not first.done()
    system.tell("door:1", Settle("a", 1))
    assert await first == 1


async def test_the_ask_timeout_still_bounds_a_deferred_reply(rig: Rig) -> None:
    system = rig.system
    with pytest.raises(AskTimeout):
        await system.ask("door:1", Later("a"), timeout=0.05)
    system.tell("door:1", Settle("a", "too late"))  # answering a gone asker is harmless
    assert await system.ask("door:1", "after") == "after"


async def test_a_stop_answers_what_the_actor_owes_in_on_stop_else_fails_it(rig: Rig) -> None:
    system = rig.system
    rig.farewell[0] = "not opened"
    answered = await running(system.ask("door:1", Later("a")))
    await system.restart("door:1")  # on_stop of the instance that owes it
    assert await answered == "not opened"

    rig.farewell[0] = None  # an actor that says nothing: the runtime fails the reply
    await system.restart("door:1")  # a fresh instance without the farewell
    failed = await running(system.ask("door:1", Later("b")))
    await system.restart("door:1")
    with pytest.raises(ActorStoppedError):
        await failed


async def test_a_crash_answers_what_the_crashed_instance_owes(rig: Rig) -> None:
    system = rig.system
    owed = await running(system.ask("door:1", Later("a")))
    system.tell("door:1", "crash")
    with pytest.raises(ActorStoppedError):
        await owed
    await system.settle()
    assert await system.ask("door:1", "restarted") == "restarted"


async def test_an_actor_owing_a_reply_is_not_passivated(rig: Rig) -> None:
    system, clock = rig.system, rig.clock
    asked = await running(system.ask("door:1", Later("a")))
    assert await system.ask("door:1", "idle now") == "idle now"
    clock.advance(61.0)
    assert await system.passivate_idle() == 0
    assert system.is_active("door:1")

    system.tell("door:1", Settle("a", "opened"))
    assert await asked == "opened"
    clock.advance(61.0)
    assert await system.passivate_idle() == 1


async def test_a_deferred_returned_to_a_tell_is_dropped(rig: Rig) -> None:
    system, clock = rig.system, rig.clock
    system.tell("door:1", "tell me later")
    assert await system.ask("door:1", "after") == "after"
    clock.advance(61.0)
    assert await system.passivate_idle() == 1  # nothing owed
