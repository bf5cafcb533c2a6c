"""A device actor's opens through a vendor that confirms later (acme: 202 + ticket, then a
``command_result``) wait for that result outside the actor's mailbox: the actor goes on with its
mail, records each open in turn when its result comes, and answers every asker, also when it
stops first. Acme here is in process; the test hands over each ``command_result`` itself."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from propdev.access import Opening, OpenOutcome, Reason, Result, command_id_for
from propdev.actors import ActorSystem
from propdev.actors.device import DeviceActor, DeviceDeps
from propdev.actors.messages import DeviceEvent, DeviceEvents, DeviceSnapshot, OpenAccessPoint
from propdev.devkit import AcmeSimulator
from propdev.partners import (
    AcmeAdapter,
    AcmeInProcessClient,
    Confirmation,
    DeviceInfo,
    PartnerGateway,
)
from propdev.registry import InProcessBus
from propdev.storage.audit import AuditLog
from propdev.storage.directory import Directory
from tests.unit.access.conftest import DOOR, Estate
from tests.unit.access.conftest import estate as estate  # a fixture (re-exported)
from tests.unit.access.conftest import url as url  # a fixture (re-exported)

DEVICE = "sim-door-1"  # the estate's DOOR, as acme names it here


@dataclass
class Rig:
    estate: Estate
    system: ActorSystem
    acme: AcmeSimulator
    adapter: AcmeAdapter
    opening: Opening
    results: asyncio.Queue[dict[str, Any]]  # acme's command_results, held until handed over

    async def tap(self, command_id: str, key: str | None = None) -> OpenOutcome:
        message = OpenAccessPoint(DOOR, self.estate.owner, "owner", command_id, key)
        outcome = await self.system.ask(f"device:{DOOR}", message)
        assert isinstance(outcome, OpenOutcome)
        return outcome

    def confirm(self, result: dict[str, Any]) -> None:
        """Hand acme's ``command_result`` to the adapter, as the callback route does."""
        ok = result["result"] == "done"
        assert self.adapter.confirm(Confirmation(result["ticket"], ok, result.get("error")))

    async def settled(self) -> None:
        """Once the device actor has handled everything sent to it so far."""
        await self.system.ask(f"device:{DOOR}", DeviceSnapshot())


@pytest.fixture
async def rig(estate: Estate) -> AsyncIterator[Rig]:
    results: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def callback(event: dict[str, Any]) -> None:
        if event["type"] == "command_result":
            results.put_nowait(event)

    acme = AcmeSimulator((DeviceInfo(DEVICE, "door", "Door"),), callback=callback)
    adapter = AcmeAdapter("simulator", AcmeInProcessClient(acme))  # the estate's partner id
    gateway = PartnerGateway(adapter, timeout=5.0, breaker_failures=50, breaker_reset=30.0)
    bus = InProcessBus()
    opening = Opening(
        estate.db, bus, estate.rules, estate.passes, estate.vehicles, clock=estate.clock
    )
    deps = DeviceDeps(
        estate.db,
        Directory(estate.db),
        {"simulator": gateway},
        bus,
        clock=estate.clock,
        opening=opening,
    )
    system = ActorSystem("n1", ask_timeout=5.0, sweep_interval=float("inf"))
    system.register_kind("device", lambda address: DeviceActor(deps))
    await estate.rules.grant(estate.owner, DOOR)
    await system.start()
    try:
        yield Rig(estate, system, acme, adapter, opening, results)
    finally:
        await system.stop()
        await acme.close()
        await bus.close()


def asked(rig: Rig, command_id: str, key: str | None = None) -> asyncio.Task[OpenOutcome]:
    return asyncio.create_task(rig.tap(command_id, key))


async def test_two_taps_wait_for_acme_at_once_and_the_mailbox_goes_on_meanwhile(
    rig: Rig,
) -> None:
    first, second = asked(rig, "cmd-1"), asked(rig, "cmd-2")
    result_1, result_2 = await rig.results.get(), await rig.results.get()
    assert {result_1["reference"], result_2["reference"]} == {"cmd-1", "cmd-2"}
    snapshot = await rig.system.ask(f"device:{DOOR}", DeviceSnapshot())  # not behind the opens
    assert snapshot["opens"] == 0
    assert not first.done() and not second.done()

    later = result_1 if result_1["reference"] == "cmd-2" else result_2
    earlier = result_2 if later is result_1 else result_1
    rig.confirm(later)
    assert (await second).granted
    assert not first.done()
    rig.confirm(earlier)
    assert (await first).granted

    await rig.settled()
    assert (await rig.system.ask(f"device:{DOOR}", DeviceSnapshot()))["opens"] == 2
    for command_id in ("cmd-1", "cmd-2"):
        command = await rig.opening.answers.get(command_id)
        assert command is not None and command["status"] == "confirmed"
    entries = await AuditLog(rig.estate.db).page()
    opens = [(e["command_id"], e["decision"]) for e in entries if e["action"] == "open"]
    assert opens == [("cmd-2", "granted"), ("cmd-1", "granted")]  # recorded as they came


async def test_a_repeated_keyed_tap_waits_for_the_first_and_replays_its_outcome(
    rig: Rig,
) -> None:
    command_id = command_id_for(rig.estate.owner, "k-1")
    first, again = asked(rig, command_id, "k-1"), asked(rig, command_id, "k-1")
    rig.confirm(await rig.results.get())
    outcome, repeated = await first, await again
    assert outcome.granted and not outcome.replayed
    assert repeated.replayed and repeated.as_replay() == outcome.as_replay()
    assert [c["request_id"] for c in rig.acme.core.commands()] == [command_id]  # sent once
    assert rig.results.empty()


async def test_an_entry_naming_an_open_still_waiting_is_linked_to_it_once_recorded(
    rig: Rig,
) -> None:
    earlier = asked(rig, "cmd-earlier")  # a confirmed open the entry must not be linked to
    rig.confirm(await rig.results.get())
    assert (await earlier).granted

    pending = asked(rig, "cmd-now")
    result = await rig.results.get()
    entry = DeviceEvent(
        partner_id="simulator",
        event_id="ev-entry",
        device_id=DEVICE,
        type="entry",
        occurred_at=rig.estate.clock(),
        command_ref="cmd-now",
    )
    answers = await rig.system.ask(f"device:{DOOR}", DeviceEvents((entry,)))
    assert answers == ["accepted"]  # answered now: the vendor's next callback is not held
    assert not pending.done()

    rig.confirm(result)
    assert (await pending).granted
    await rig.settled()
    command = await rig.opening.answers.get("cmd-now")
    assert command is not None and command["status"] == "passage"
    steps = [s["step"] for s in await rig.opening.answers.steps("cmd-now")]
    assert steps == ["requested", "decided", "accepted", "confirmed", "entry"]
    entries = await AuditLog(rig.estate.db).page()
    assert [(e["action"], e["command_id"], e["reason"]) for e in entries[-2:]] == [
        ("open", "cmd-now", ""),
        ("entry", "cmd-now", "passage"),
    ]


async def test_a_stop_with_an_open_waiting_answers_its_asker_with_a_failed_outcome(
    rig: Rig,
) -> None:
    pending = asked(rig, "cmd-cut")
    result = await rig.results.get()
    await rig.system.restart(f"device:{DOOR}")  # on_stop while acme has not confirmed

    outcome = await pending
    assert (outcome.result, outcome.reason) == (Result.FAILED, Reason.DEVICE_TIMEOUT)
    command = await rig.opening.answers.get("cmd-cut")
    assert command is not None and command["status"] == "failed"
    steps = await rig.opening.answers.steps("cmd-cut")
    assert (steps[-1]["step"], steps[-1]["reason"]) == ("failed", "interrupted")
    assert not rig.adapter.confirm(  # nobody waits for it any more
        Confirmation(result["ticket"], True)
    )
    after = asked(rig, "cmd-after")  # the restarted actor opens as before
    rig.confirm(await rig.results.get())
    assert (await after).granted
