"""The opening pipeline: every credential (app tap, manual open, plate, code) is decided,
opened through the gateway, recorded and published by ``Opening.open``."""

from __future__ import annotations

from typing import Any

from propdev.access import Opening, OpenOutcome, OpenRequest, PassRequest, Result, Via
from propdev.access.passes import iso
from propdev.devkit import VendorSimulator
from propdev.partners import InProcessAdapter, PartnerGateway
from propdev.registry import InProcessBus
from propdev.storage.audit import AuditLog
from propdev.storage.directory import AccessPoint, Directory
from tests.unit.access.conftest import BARRIER, DOOR, NOON_WEDNESDAY, OTHER_DOOR, Estate


class Desk:
    def __init__(self, estate: Estate) -> None:
        self.bus = InProcessBus()
        self.published: list[tuple[str, dict[str, Any]]] = []
        self.bus.subscribe("user:", self._heard)
        self.desk = Opening(
            estate.db, self.bus, estate.rules, estate.passes, estate.vehicles, clock=estate.clock
        )

    async def _heard(self, channel: str, message: dict[str, Any]) -> None:
        self.published.append((channel, message))

    async def present(
        self,
        point: AccessPoint,
        kind: str,
        value: str,
        gateway: PartnerGateway,
        *,
        occurred_at: float | None = None,
    ) -> OpenOutcome:
        via = Via.PLATE if kind == "plate" else Via.CODE
        request = OpenRequest(via, value=value, occurred_at=occurred_at)
        return await self.desk.open(point, request, gateway)


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
    outcome = await desk.present(await point(estate, BARRIER), "plate", "a 123 bc 77", gateway)
    assert outcome.granted and outcome.result is Result.GRANTED
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
    unknown = await desk.present(barrier, "plate", "X999XX99", gateway)
    assert (unknown.granted, unknown.reason) == (False, "unknown_plate")
    vehicle, _ = await estate.vehicles.register(estate.owner, "A123BC77")
    no_right = await desk.present(barrier, "plate", "A123BC77", gateway)
    assert no_right.reason == "no_right"
    stale = await desk.present(
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
    refused = await desk.present(door, "pass", code, gateway)
    assert (refused.granted, refused.reason) == (False, "vendor_refused:denied")
    assert (await estate.passes.get(estate.owner, issued.id)).uses == 0
    sim.set_faults("ok")
    used = await desk.present(door, "pass", code, gateway)
    assert used.granted
    spent = await desk.present(door, "pass", code, gateway)
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
        assert (await desk.present(door, "pass", wrong, gateway)).reason == "pass_unknown"
    locked = await desk.present(door, "pass", code, gateway)
    assert (locked.granted, locked.reason) == (False, "locked_out")
    assert (await desk.present(other, "pass", code, gateway)).granted  # another device
    assert (await estate.passes.get(estate.owner, issued.id)).uses == 1  # no use taken
    estate.clock.advance(600)
    assert (await desk.present(door, "pass", code, gateway)).granted
    assert len(sim.commands()) == 2
    assert [reason for _, _, reason in await audit_tail(estate)] == [
        "pass_unknown",
        "pass_unknown",
        "pass_unknown",
        "locked_out",
        "",
        "",
    ]
    assert (await desk.desk.lockout.snapshots([DOOR], estate.clock()))[DOOR]["lockouts"] == 1


async def _events(desk: Desk) -> list[tuple[str, str]]:
    return [(e["type"], str(e.get("reason", ""))) for _, e in desk.published]


async def test_an_app_tap_is_decided_by_our_rules_inside_the_pipeline(
    estate: Estate, sim: VendorSimulator, gateway: PartnerGateway
) -> None:
    desk = Desk(estate)
    door = await point(estate, DOOR)
    tap = OpenRequest(Via.APP, subject=estate.owner, command_id="cmd-1")
    denied = await desk.desk.open(door, tap, gateway)
    assert (denied.result, denied.reason, denied.command_id) == (Result.REFUSED, "no_right", None)
    assert sim.commands() == []  # our rules said no: the vendor is never asked
    await estate.rules.grant(estate.owner, DOOR)
    opened = await desk.desk.open(door, tap, gateway)
    assert (opened.result, opened.command_id) == (Result.GRANTED, "cmd-1")
    assert [c["request_id"] for c in sim.commands()] == ["cmd-1"]
    assert await audit_tail(estate) == [
        (f"user:{estate.owner}", "denied", "no_right"),
        (f"user:{estate.owner}", "granted", ""),
    ]
    assert await _events(desk) == [("access.denied", "no_right"), ("access.granted", "")]
    command = await desk.desk.answers.get("cmd-1")
    assert command is not None and command["status"] == "confirmed"
    steps = [s["step"] for s in await desk.desk.answers.steps("cmd-1")]
    assert steps == ["requested", "decided", "accepted", "confirmed"]


async def test_a_keyed_tap_replays_its_outcome_and_sends_no_second_command(
    estate: Estate, sim: VendorSimulator, gateway: PartnerGateway
) -> None:
    desk = Desk(estate)
    await estate.rules.grant(estate.owner, DOOR)
    await estate.rules.grant(estate.owner, OTHER_DOOR)
    door, other = await point(estate, DOOR), await point(estate, OTHER_DOOR)
    tap = OpenRequest(Via.APP, subject=estate.owner, command_id="cmd-k", idempotency_key="k-1")
    first = await desk.desk.open(door, tap, gateway)
    again = await desk.desk.open(door, tap, gateway)
    assert first.granted and not first.replayed
    assert again.replayed and again.as_replay() == first.as_replay()
    assert len(sim.commands()) == 1
    elsewhere = await desk.desk.open(other, tap, gateway)
    assert (elsewhere.result, elsewhere.reason) == (Result.REFUSED, "idempotency_key_reused")
    assert len(sim.commands()) == 1
    sim.set_faults("deny")  # a vendor's refusal is final: replayed too
    no = OpenRequest(Via.APP, subject=estate.owner, command_id="cmd-n", idempotency_key="k-2")
    refused = await desk.desk.open(door, no, gateway)
    assert (refused.reason, refused.vendor_reason) == ("vendor_refused:denied", "denied")
    assert (await desk.desk.open(door, no, gateway)).replayed
    assert len(sim.commands()) == 2


async def test_a_failed_open_is_not_kept_under_its_key_so_a_retry_commands_again(
    estate: Estate, sim: VendorSimulator, gateway: PartnerGateway
) -> None:
    desk = Desk(estate)
    await estate.rules.grant(estate.owner, DOOR)
    door = await point(estate, DOOR)
    tap = OpenRequest(Via.APP, subject=estate.owner, command_id="cmd-f", idempotency_key="k-f")
    sim.set_faults("error")
    broken = await desk.desk.open(door, tap, gateway)
    assert (broken.result, broken.reason) == (Result.FAILED, "partner_unavailable")
    command = await desk.desk.answers.get("cmd-f")
    assert command is not None and (command["status"], command["reason"]) == (
        "failed",
        "unavailable",
    )
    assert await _events(desk) == [("access.failed", "partner_unavailable")]
    sim.set_faults("ok")
    retried = await desk.desk.open(door, tap, gateway)
    assert retried.granted and not retried.replayed
    assert [c["request_id"] for c in sim.commands()] == ["cmd-f"]  # the retry reached it
    command = await desk.desk.answers.get("cmd-f")
    assert command is not None and command["status"] == "confirmed"


async def test_an_open_circuit_refuses_fast_and_records_no_command(
    estate: Estate, sim: VendorSimulator
) -> None:
    desk = Desk(estate)
    await estate.rules.grant(estate.owner, DOOR)
    door = await point(estate, DOOR)
    gateway = PartnerGateway(
        InProcessAdapter(sim), timeout=5.0, breaker_failures=1, breaker_reset=30.0
    )
    sim.set_faults("error")
    await desk.desk.open(door, OpenRequest(Via.APP, subject=estate.owner, command_id="a"), gateway)
    fast = await desk.desk.open(
        door, OpenRequest(Via.APP, subject=estate.owner, command_id="b"), gateway
    )
    assert (fast.result, fast.reason) == (Result.FAILED, "partner_circuit_open")
    assert fast.retry_after is not None and fast.retry_after > 0
    assert await desk.desk.answers.get("a") is not None  # sent, failed
    assert await desk.desk.answers.get("b") is None  # never sent: nothing to follow
    assert [reason for _, _, reason in await audit_tail(estate)] == [
        "partner_unavailable",
        "partner_circuit_open",
    ]


async def test_an_operators_manual_open_is_decided_by_the_operator_and_audited_with_the_reason(
    estate: Estate, sim: VendorSimulator, gateway: PartnerGateway
) -> None:
    desk = Desk(estate)
    door = await point(estate, DOOR)
    manual = OpenRequest(Via.MANUAL, subject="op-1", command_id="cmd-m", note="courier stuck")
    opened = await desk.desk.open(door, manual, gateway)  # the operator holds no right: no matter
    assert opened.granted
    rows = await AuditLog(estate.db).page()
    assert [(r["actor"], r["action"], r["decision"], r["reason"]) for r in rows] == [
        ("operator:op-1", "manual_open", "granted", "courier stuck")
    ]
    steps = await desk.desk.answers.steps("cmd-m")
    assert steps[1]["by"] == "operator"
