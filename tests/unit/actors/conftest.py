"""Fixtures of the actor runtime tests: an injected clock, a fake store, probe actors."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pytest

from propdev.actors import Actor, ActorSystem, Address
from propdev.supervision import Backoff, RestartIntensity

T = TypeVar("T")


async def running(coro: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
    """Start `coro` as a task and return once it has run up to its first suspension."""
    began = asyncio.Event()

    async def wrapper() -> T:
        began.set()
        return await coro

    task = asyncio.create_task(wrapper())
    await began.wait()
    return task


@dataclass
class Gate:
    """A message that holds an actor: `entered` is set when it is being handled."""

    entered: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass
class CrashOnce:
    """A message that crashes its actor the first time only (so redelivery succeeds)."""

    fired: bool = False


class FakeClock:
    """Monotonic time that moves only when a test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Crash(Exception):
    """What probe actors raise when told to fail."""


class Probe(Actor):
    """Records its lifecycle in `journal`; counts; fails on 'crash'; can wait on a gate.

    Durable state is a counter kept in `store` under the address.
    """

    serials = itertools.count()

    def __init__(self, journal: list[tuple[str, str]], store: dict[str, int]) -> None:
        self.serial = next(self.serials)
        self.journal = journal
        self.store = store
        self.count = 0
        self.seen: list[object] = []

    async def on_start(self) -> None:
        self.count = self.store.get(str(self.address), 0)
        self.journal.append(("start", str(self.address)))

    async def on_stop(self) -> None:
        self.store[str(self.address)] = self.count
        self.journal.append(("stop", str(self.address)))

    async def on_failure(self, exc: BaseException, message: object) -> None:
        self.journal.append(("failure", str(self.address)))

    async def receive(self, message: object) -> object:
        if isinstance(message, Gate):
            message.entered.set()
            await message.release.wait()
            return "released"
        if message == "crash":
            raise Crash(f"{self.address} told to crash")
        if isinstance(message, CrashOnce) and not message.fired:
            message.fired = True
            raise Crash(f"{self.address} told to crash once")
        if message == "count":
            return self.count
        if message == "instance":
            return self.serial
        if message == "seen":
            return list(self.seen)
        self.seen.append(message)
        self.count += 1
        return self.count


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def journal() -> list[tuple[str, str]]:
    return []


@pytest.fixture
def store() -> dict[str, int]:
    return {}


@pytest.fixture
async def system(
    clock: FakeClock, journal: list[tuple[str, str]], store: dict[str, int]
) -> AsyncIterator[ActorSystem]:
    system = ActorSystem(
        "n1",
        idle_timeout=60.0,
        mailbox_capacity=100,
        ask_timeout=5.0,
        clock=clock,
        backoff=Backoff(initial=0),
        kind_intensity=RestartIntensity(intensity=20, period=10.0),
    )

    def probe(address: Address) -> Any:
        return Probe(journal, store)

    system.register_kind("device", probe)
    system.register_kind("session", probe)
    await system.start()
    yield system
    await system.stop()
