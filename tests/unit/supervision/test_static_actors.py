"""Classic supervision of a fixed set of actors, reached through the actor system."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from propdev.actors import ActorStoppedError, ActorSystem, Address
from propdev.supervision import (
    Backoff,
    Restart,
    RestartIntensity,
    RestartStrategy,
    Supervisor,
)
from tests.unit.actors.conftest import CrashOnce, Probe

WORKERS = ["worker:a", "worker:b", "worker:c"]


@pytest.fixture
async def system() -> AsyncIterator[ActorSystem]:
    system = ActorSystem("n1", backoff=Backoff(initial=0), sweep_interval=float("inf"))
    await system.start()
    yield system
    await system.stop()


async def supervise(
    system: ActorSystem,
    strategy: RestartStrategy,
    journal: list[tuple[str, str]],
    store: dict[str, int],
) -> Supervisor:
    def probe(address: Address) -> Probe:
        return Probe(journal, store)

    supervisor = Supervisor(
        "workers",
        [system.child_spec(address, probe) for address in WORKERS],
        strategy=strategy,
        intensity=RestartIntensity(intensity=5, period=10.0),
        backoff=Backoff(initial=0),
    )
    await system.add_supervisor(supervisor)
    return supervisor


async def instances(system: ActorSystem) -> dict[str, object]:
    return {address: await system.ask(address, "instance") for address in WORKERS}


@pytest.mark.parametrize(
    ("strategy", "restarted"),
    [
        (RestartStrategy.ONE_FOR_ONE, {"worker:b"}),
        (RestartStrategy.ONE_FOR_ALL, {"worker:a", "worker:b", "worker:c"}),
        (RestartStrategy.REST_FOR_ONE, {"worker:b", "worker:c"}),
    ],
)
async def test_a_crashing_worker_restarts_the_workers_its_strategy_names(
    system: ActorSystem, strategy: RestartStrategy, restarted: set[str]
) -> None:
    journal: list[tuple[str, str]] = []
    store: dict[str, int] = {}
    supervisor = await supervise(system, strategy, journal, store)
    for address in WORKERS:
        system.tell(address, "work")
    before = await instances(system)
    journal.clear()

    system.tell("worker:b", CrashOnce())
    await system.ask("worker:b", "count")  # answered once b is back
    await system.settle()  # and its siblings too
    after = await instances(system)

    assert {a for a in WORKERS if after[a] != before[a]} == restarted
    siblings = restarted - {"worker:b"}
    stops = [address for event, address in journal if event == "stop"]
    starts = [address for event, address in journal if event == "start"]
    assert stops == sorted(siblings, reverse=True)  # siblings stop in reverse; b had crashed
    assert starts == sorted(restarted)  # everything restarted starts in order
    assert ("failure", "worker:b") in journal
    assert all(store[a] == 1 for a in siblings)  # a stopped sibling saved its state
    assert await system.ask("worker:b", "seen") == [CrashOnce(fired=True)]  # redelivered
    counts = {a["id"]: a["restarts"] for a in supervisor.snapshot()["actors"]}
    assert counts == {a: int(a in restarted) for a in WORKERS}


async def test_a_temporary_worker_that_crashes_is_gone(system: ActorSystem) -> None:
    journal: list[tuple[str, str]] = []
    supervisor = Supervisor("workers", backoff=Backoff(initial=0))
    await system.add_supervisor(supervisor)
    await supervisor.start_child(
        system.child_spec("worker:t", lambda address: Probe(journal, {}), restart=Restart.TEMPORARY)
    )
    system.tell("worker:t", CrashOnce())
    with pytest.raises(ActorStoppedError):
        await system.ask("worker:t", "count")  # queued behind the crash; the worker is gone
    await system.settle()
    assert len(supervisor) == 0
    with pytest.raises(KeyError):
        system.tell("worker:t", "x")
    (letter,) = system.dead_letters
    assert "stopped" in letter.error  # the crashing message went nowhere: it is recorded
    assert journal == [("start", "worker:t"), ("failure", "worker:t")]
