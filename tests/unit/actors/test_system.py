"""The actor system: virtual activation, passivation, restarts, dead letters, observation."""

from __future__ import annotations

import json

import pytest
from structlog.testing import capture_logs

from propdev.actors import (
    Actor,
    ActorStoppedError,
    ActorSystem,
    Address,
    InvalidAddressError,
    UnknownActorError,
)
from propdev.supervision import Backoff, EscalationError, RestartIntensity
from tests.unit.actors.conftest import CrashOnce, FakeClock, Gate, Probe, running


def actors_of(system: ActorSystem, kind: str) -> dict[str, dict[str, object]]:
    snapshot = system.snapshot()
    (supervisor,) = [s for s in snapshot["supervisors"] if s["id"] == kind]
    return {actor["id"]: actor for actor in supervisor["actors"]}


async def test_an_actor_is_activated_by_its_first_message(system: ActorSystem) -> None:
    assert actors_of(system, "device") == {}
    assert not system.is_active("device:42")
    system.tell("device:42", "hello")
    assert system.is_active(Address("device", "42"))
    assert list(actors_of(system, "device")) == ["device:42"]
    assert await system.ask("device:42", "count") == 1
    assert system.stats()["kinds"]["device"]["activations"] == 1


async def test_a_message_to_an_unknown_kind_is_refused(system: ActorSystem) -> None:
    with pytest.raises(UnknownActorError):
        system.tell("printer:1", "x")
    with pytest.raises(KeyError):
        await system.ask("printer:1", "x")
    with pytest.raises(InvalidAddressError):
        system.tell("no-colon", "x")


async def test_an_idle_actor_is_passivated_and_comes_back_with_its_state(
    system: ActorSystem,
    clock: FakeClock,
    journal: list[tuple[str, str]],
    store: dict[str, int],
) -> None:
    for _ in range(3):
        system.tell("device:1", "tick")
    assert await system.ask("device:1", "count") == 3
    clock.advance(59.0)
    assert await system.passivate_idle() == 0  # not idle long enough
    clock.advance(2.0)
    assert await system.passivate_idle() == 1
    assert journal == [("start", "device:1"), ("stop", "device:1")]
    assert store == {"device:1": 3}
    assert actors_of(system, "device") == {}
    assert system.stats()["active_actors"] == 0

    assert await system.ask("device:1", "count") == 3  # on_start loaded it
    assert journal[-1] == ("start", "device:1")
    stats = system.stats()["kinds"]["device"]
    assert (stats["activations"], stats["passivations"], stats["active"]) == (2, 1, 1)


async def test_only_idle_actors_are_passivated(system: ActorSystem, clock: FakeClock) -> None:
    gate = Gate()
    system.tell("device:busy", gate)
    await system.ask("device:idle", "x")
    clock.advance(61.0)
    assert await system.passivate_idle() == 1
    assert list(actors_of(system, "device")) == ["device:busy"]
    gate.release.set()


class Echo(Actor):
    async def receive(self, message: object) -> object:
        return message


class Holder(Echo):
    def may_passivate(self) -> bool:
        return False


async def test_an_actor_may_refuse_passivation() -> None:
    clock = FakeClock()
    system = ActorSystem("n1", idle_timeout=1.0, clock=clock, sweep_interval=float("inf"))
    system.register_kind("session", lambda address: Holder())
    await system.start()
    try:
        await system.ask("session:1", "x")
        clock.advance(10.0)
        assert await system.passivate_idle() == 0
    finally:
        await system.stop()


async def test_a_kind_can_passivate_sooner_or_never() -> None:
    clock = FakeClock()
    system = ActorSystem("n1", idle_timeout=100.0, clock=clock, sweep_interval=float("inf"))
    system.register_kind("fast", lambda address: Echo(), passivate_after=1.0)
    system.register_kind("pinned", lambda address: Echo(), passivate_after=float("inf"))
    await system.start()
    try:
        await system.ask("fast:1", "x")
        await system.ask("pinned:1", "x")
        clock.advance(1000.0)
        assert await system.passivate_idle() == 1
        assert system.stats()["kinds"]["pinned"]["active"] == 1
    finally:
        await system.stop()


async def test_a_crashing_actor_is_restarted_and_its_siblings_are_untouched(
    system: ActorSystem, journal: list[tuple[str, str]]
) -> None:
    sibling = await system.ask("device:2", "instance")
    await system.ask("device:1", "x")
    before = await system.ask("device:1", "instance")
    crash = CrashOnce()
    system.tell("device:1", crash)
    after = await system.ask("device:1", "instance")  # queued behind the crash
    assert after != before
    assert await system.ask("device:2", "instance") == sibling
    assert journal.count(("start", "device:2")) == 1
    assert ("failure", "device:1") in journal
    assert await system.ask("device:1", "seen") == [crash]  # redelivered after the restart
    assert actors_of(system, "device")["device:1"]["restarts"] == 1
    assert actors_of(system, "device")["device:2"]["restarts"] == 0


async def test_a_poison_message_is_dead_lettered_and_the_actor_serves_others(
    system: ActorSystem,
) -> None:
    system.tell("device:1", "a")
    system.tell("device:1", "crash")
    system.tell("device:1", "b")
    assert await system.ask("device:1", "seen") == ["b"]  # a new instance; the poison gave up
    (letter,) = list(system.dead_letters)
    assert (letter.address, letter.message, letter.attempts) == ("device:1", "'crash'", 3)
    assert "Crash" in letter.error
    assert actors_of(system, "device")["device:1"]["restarts"] == 3
    stats = system.stats()
    assert stats["dead_letters"] == 1
    assert stats["kinds"]["device"]["dead_letters"] == 1
    assert stats["kinds"]["session"]["dead_letters"] == 0
    assert json.loads(json.dumps(letter.as_dict()))["attempts"] == 3


async def test_restart_by_id_stops_and_starts_a_new_instance(
    system: ActorSystem, journal: list[tuple[str, str]], store: dict[str, int]
) -> None:
    await system.ask("device:1", "x")
    before = await system.ask("device:1", "instance")
    await system.restart("device:1")
    assert await system.ask("device:1", "instance") != before
    assert await system.ask("device:1", "count") == 1  # saved by on_stop, loaded by on_start
    assert journal == [("start", "device:1"), ("stop", "device:1"), ("start", "device:1")]
    assert actors_of(system, "device")["device:1"]["restarts"] == 1


async def test_restart_of_an_unknown_actor_raises_key_error(system: ActorSystem) -> None:
    with pytest.raises(KeyError):
        await system.restart("device:never")


async def test_the_snapshot_lists_supervisors_and_actors_with_depth_state_and_restarts(
    system: ActorSystem,
) -> None:
    gate = Gate()
    system.tell("device:1", gate)
    system.tell("device:1", "queued")
    await gate.entered.wait()
    await system.ask("session:9", "x")
    snapshot = json.loads(json.dumps(system.snapshot()))
    assert snapshot["node"] == "n1"
    assert snapshot["failed"] is False
    assert [s["id"] for s in snapshot["supervisors"]] == ["device", "session"]
    device = snapshot["supervisors"][0]
    assert (device["strategy"], device["restarts"]) == ("one_for_one", 0)
    (actor,) = device["actors"]
    assert actor == {
        "type": "actor",
        "id": "device:1",
        "kind": "device",
        "state": "running",
        "mailbox_depth": 1,
        "mailbox_capacity": 100,
        "restarts": 0,
    }
    gate.release.set()
    assert await system.ask("device:1", "count") == 1


async def test_ten_thousand_actors_activate_and_each_gets_its_mail(system: ActorSystem) -> None:
    # How fast is bench/bench_runtime.py's question; here, that none is lost.
    for i in range(10_000):
        system.tell(f"device:{i}", "x")
    assert await system.ask("device:9999", "count") == 1
    assert await system.ask("device:0", "count") == 1
    assert system.stats()["active_actors"] == 10_000


async def test_stop_saves_every_actor_and_refuses_new_mail(
    system: ActorSystem, store: dict[str, int]
) -> None:
    for i in range(5):
        system.tell(f"device:{i}", "x")
    await system.ask("session:1", "x")
    await system.stop()
    assert store == {**{f"device:{i}": 1 for i in range(5)}, "session:1": 1}
    with pytest.raises(ActorStoppedError):
        system.tell("device:1", "x")


async def test_an_actor_past_its_shutdown_time_is_killed_and_its_queued_asks_fail() -> None:
    journal: list[tuple[str, str]] = []
    system = ActorSystem("n1", sweep_interval=float("inf"))
    system.register_kind("device", lambda address: Probe(journal, {}), shutdown=0)
    await system.start()
    gate = Gate()
    system.tell("device:1", gate)
    await gate.entered.wait()
    pending = await running(system.ask("device:1", "count"))
    await system.stop()  # the gate is never released: the shutdown time runs out
    with pytest.raises(ActorStoppedError):
        await pending
    assert journal == [("start", "device:1"), ("stop", "device:1")]


async def test_a_crash_storm_escalates_and_the_root_restarts_the_kind_supervisor(
    clock: FakeClock, store: dict[str, int]
) -> None:
    journal: list[tuple[str, str]] = []
    system = ActorSystem(
        "n1",
        clock=clock,
        backoff=Backoff(initial=0),
        kind_intensity=RestartIntensity(intensity=1, period=10.0),
        sweep_interval=float("inf"),
    )
    system.register_kind("device", lambda address: Probe(journal, store))
    await system.start()
    try:
        await system.ask("device:ok", "x")
        with capture_logs() as logs:
            system.tell("device:1", CrashOnce())
            await system.ask("device:1", "count")  # one restart: within the intensity
            system.tell("device:2", CrashOnce())
            with pytest.raises(ActorStoppedError):
                await system.ask("device:2", "count")  # escalation stopped the subtree
            await system.settle()
        assert [e["event"] for e in logs if e["event"] == "supervisor_escalated"] == [
            "supervisor_escalated"
        ]
        assert store["device:ok"] == 1  # stopped gracefully with the subtree
        snapshot = system.snapshot()
        assert snapshot["supervisors"][0]["restarts"] == 1
        assert snapshot["supervisors"][0]["state"] == "running"
        assert not system.failed
        assert await system.ask("device:ok", "count") == 1  # reactivated with its state
    finally:
        await system.stop()


async def test_past_its_intensity_the_root_fails_without_exiting(clock: FakeClock) -> None:
    failures: list[EscalationError] = []
    system = ActorSystem(
        "n1",
        clock=clock,
        backoff=Backoff(initial=0),
        kind_intensity=RestartIntensity(intensity=0, period=10.0),
        root_intensity=RestartIntensity(intensity=1, period=60.0),
        sweep_interval=float("inf"),
        on_failed=failures.append,
    )
    system.register_kind("device", lambda address: Probe([], {}))
    system.register_kind("session", lambda address: Probe([], {}))
    await system.start()
    try:
        await system.ask("session:1", "x")
        for _ in range(2):
            system.tell("device:1", "crash")
            with pytest.raises(ActorStoppedError):
                await system.ask("device:1", "count")
            await system.settle()
        assert system.failed
        assert not system.ready
        (failure,) = failures
        assert failure.supervisor == "n1"
        assert isinstance(failure.cause, EscalationError)
        snapshot = system.snapshot()
        assert snapshot["failed"] is True
        assert "exceeded" in snapshot["failure"]
        with pytest.raises(ActorStoppedError):
            system.tell("session:1", "x")
    finally:
        await system.stop()


async def test_an_actor_ref_tells_and_asks_its_address(system: ActorSystem) -> None:
    ref = system.ref("device:5")
    assert ref.address == Address("device", "5")
    ref.tell("x")
    await ref.send("y")
    assert await ref.ask("count") == 2
