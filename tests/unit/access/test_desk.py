"""The desk: a presented plate or code is decided, opened through the gateway and recorded."""

from __future__ import annotations

from typing import Any

from propdev.access import AccessDesk, PassRequest
from propdev.access.passes import iso
from propdev.devkit import VendorSimulator
from propdev.partners import PartnerGateway
from propdev.registry import InProcessBus
from propdev.storage.audit import AuditLog
from propdev.storage.directory import AccessPoint, Directory
from tests.unit.access.conftest import BARRIER, DOOR, NOON_WEDNESDAY, OTHER_DOOR, Estate


class Desk:
    def __init__(self, estate: Estate) -> None:
        self.bus = InProcessBus()
        self.published: list[tuple[str, dict[str, Any]]] = []
        self.bus.subscribe("user:", self._heard)
        self.desk = AccessDesk(
            estate.db, self.bus, estate.rules, estate.passes, estate.vehicles, clock=estate.clock
        )

    async def _heard(self, channel: str, message: dict[str, Any]) -> None:
        self.published.append((channel, message))


async def point(estate: Estate, ap_id: str) -> AccessPoint:
    found = await Directory(estate.db).access_point(ap_id)
    assert found is not None
    return found


async def audit_tail(estate: Estate) -> list[tuple[str, str, str]]:
    """The access decisions (credentials registered and passes issued are audited too)."""
    rows = await AuditLog(estate.db).page()
    return [(r["actor"], r["decision"], r["reason"]) for r in rows if r["action"] == "open"]


async def test_a_registered_plate_opens_the_barrier_and_tells_its_owner(
    estate: Estate, sim: VendorSimulator, gateway: PartnerGateway
) -> None:
    desk = Desk(estate)
    await estate.rules.grant(estate.owner, BARRIER)
    vehicle, _ = await estate.vehicles.register(estate.owner, "A123BC77")
    outcome = await desk.desk.present(await point(estate, BARRIER), "plate", "a 123 bc 77", gateway)
    assert outcome.granted and outcome.opened and outcome.actor == f"vehicle:{vehicle.id}"
    assert [c["request_id"] for c in sim.commands()] == [outcome.command_id]
    assert sim.commands()[0]["device_id"] == "sim-barrier-1"
    channel, event = desk.published[0]
    assert channel == f"user:{estate.owner}"
    assert (event["type"], event["access_point_id"], event["plate_hint"]) == (
        "access.automatic",
        BARRIER,
        "C77",
    )
    assert "A123BC77" not in str(event)
    assert await audit_tail(estate) == [(f"vehicle:{vehicle.id}", "granted", "")]
    assert (await AuditLog(estate.db).verify())[0]


async def test_unknown_plates_and_plates_without_a_right_now_are_denied_and_audited(
    estate: Estate, sim: VendorSimulator, gateway: PartnerGateway
) -> None:
    desk = Desk(estate)
    barrier = await point(estate, BARRIER)
    unknown = await desk.desk.present(barrier, "plate", "X999XX99", gateway)
    assert (unknown.granted, unknown.reason) == (False, "unknown_plate")
    vehicle, _ = await estate.vehicles.register(estate.owner, "A123BC77")
    no_right = await desk.desk.present(barrier, "plate", "A123BC77", gateway)
    assert no_right.reason == "no_right"
    stale = await desk.desk.present(
        barrier, "plate", "A123BC77", gateway, occurred_at=NOON_WEDNESDAY - 600
    )
    assert stale.reason == "stale_event"
    assert sim.commands() == []
    actors = [a for a, _, _ in await audit_tail(estate)]
    assert actors[0].startswith("plate:") and "X999XX99" not in actors[0]
    assert actors[1:] == [f"vehicle:{vehicle.id}"] * 2
    assert [e["type"] for _, e in desk.published] == ["access.denied", "access.denied"]


async def test_a_pass_use_is_counted_and_given_back_when_the_device_refuses(
    estate: Estate, sim: VendorSimulator, gateway: PartnerGateway
) -> None:
    desk = Desk(estate)
    await estate.rules.grant(estate.owner, DOOR)
    issued, code = await estate.passes.create(
        estate.owner,
        PassRequest.parse(
            {
                "access_point_ids": [DOOR],
                "valid_from": iso(NOON_WEDNESDAY),
                "valid_until": iso(NOON_WEDNESDAY + 3600),
                "max_uses": 1,
            },
            now=NOON_WEDNESDAY,
        ),
    )
    door = await point(estate, DOOR)
    sim.set_faults("deny")
    refused = await desk.desk.present(door, "pass", code, gateway)
    assert (refused.granted, refused.reason) == (False, "vendor_refused:denied")
    assert (await estate.passes.get(estate.owner, issued.id)).uses == 0
    sim.set_faults("ok")
    used = await desk.desk.present(door, "pass", code, gateway)
    assert used.granted and used.actor == f"pass:{issued.id}"
    spent = await desk.desk.present(door, "pass", code, gateway)
    assert (spent.granted, spent.reason) == (False, "pass_used_up")
    assert [e["type"] for _, e in desk.published] == ["pass.denied", "pass.used", "pass.denied"]
    assert desk.published[1][1]["uses"] == 1
    assert await audit_tail(estate) == [
        (f"pass:{issued.id}", "denied", "vendor_refused:denied"),
        (f"pass:{issued.id}", "granted", ""),
        (f"pass:{issued.id}", "denied", "pass_used_up"),
    ]
    assert len(sim.commands()) == 2


async def test_a_keypad_typing_unknown_codes_is_locked_out_even_for_the_right_code(
    estate: Estate, sim: VendorSimulator, gateway: PartnerGateway
) -> None:
    from propdev.access import KeypadLockout, KeypadPolicy

    desk = Desk(estate)
    desk.desk.lockout = KeypadLockout(KeypadPolicy(attempts=3, window=300, cooldown=600))
    await estate.rules.grant(estate.owner, DOOR)
    await estate.rules.grant(estate.owner, OTHER_DOOR)
    issued, code = await estate.passes.create(
        estate.owner,
        PassRequest.parse(
            {
                "access_point_ids": [DOOR, OTHER_DOOR],
                "valid_from": iso(NOON_WEDNESDAY),
                "valid_until": iso(NOON_WEDNESDAY + 3 * 3600),
                "max_uses": 5,
            },
            now=NOON_WEDNESDAY,
        ),
    )
    door, other = await point(estate, DOOR), await point(estate, OTHER_DOOR)
    wrong = "00000000" if code != "00000000" else "11111111"
    for _ in range(3):
        assert (await desk.desk.present(door, "pass", wrong, gateway)).reason == "pass_unknown"
    locked = await desk.desk.present(door, "pass", code, gateway)
    assert (locked.granted, locked.reason, locked.actor) == (False, "locked_out", "pass:unchecked")
    assert (await desk.desk.present(other, "pass", code, gateway)).granted  # another device
    assert (await estate.passes.get(estate.owner, issued.id)).uses == 1  # no use taken
    estate.clock.advance(600)
    assert (await desk.desk.present(door, "pass", code, gateway)).granted
    assert len(sim.commands()) == 2
    assert [reason for _, _, reason in await audit_tail(estate)] == [
        "pass_unknown",
        "pass_unknown",
        "pass_unknown",
        "locked_out",
        "",
        "",
    ]
    assert desk.desk.lockout.snapshot(DOOR, estate.clock())["lockouts"] == 1
