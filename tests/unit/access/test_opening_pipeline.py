"""The opening pipeline for an app tap and an operator's manual open, against a scripted
partner: what is decided, what the partner is asked, what is recorded (command and steps,
audit entry, event, the answer under the idempotency key) and published, for every answer the
partner can give -- and what is replayed for a repeated key."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest
from structlog.testing import capture_logs

from propdev.access import Opening, OpenOutcome, OpenRequest, Result, Via, command_id_for
from propdev.partners import (
    BulkheadFullError,
    CircuitOpenError,
    OpenResult,
    PartnerRefusedError,
    PartnerTimeoutError,
    PartnerUnavailableError,
)
from propdev.registry import InProcessBus
from propdev.storage import UnitConnection
from propdev.storage.audit import AuditLog
from propdev.storage.commands import Commands
from propdev.storage.directory import Directory
from propdev.storage.events import EventStore
from tests.unit.access.conftest import DOOR, NOON_WEDNESDAY, OTHER_DOOR, Estate

T0 = NOON_WEDNESDAY


class Partner:
    """A gateway whose next answer is scripted: an ``OpenResult`` or an exception to raise."""

    def __init__(self, estate: Estate, answer: OpenResult | Exception | None = None) -> None:
        self.estate = estate
        self.answer = answer
        self.calls: list[tuple[str, str, str | None]] = []
        self.takes = 0.0  # seconds the call takes on the estate's clock

    async def open(
        self, device_id: str, *, request_id: str, traceparent: str | None = None
    ) -> OpenResult:
        self.calls.append((device_id, request_id, traceparent))
        self.estate.clock.advance(self.takes)
        if isinstance(self.answer, Exception):
            raise self.answer
        if self.answer is not None:
            return self.answer
        return OpenResult(device_id, f"v-{len(self.calls)}")


class Desk:
    def __init__(self, estate: Estate) -> None:
        self.estate = estate
        self.bus = InProcessBus()
        self.published: list[tuple[str, dict[str, Any]]] = []
        self.bus.subscribe("user:", self._heard)
        self.opening = Opening(
            estate.db, self.bus, estate.rules, estate.passes, estate.vehicles, clock=estate.clock
        )

    async def _heard(self, channel: str, message: dict[str, Any]) -> None:
        self.published.append((channel, message))

    async def tap(
        self,
        partner: Partner | None,
        *,
        ap: str = DOOR,
        key: str | None = None,
        command_id: str | None = "cmd-1",
        **kw: Any,
    ) -> OpenOutcome:
        point = await Directory(self.estate.db).access_point(ap)
        assert point is not None
        request = OpenRequest(
            Via.APP,
            subject=self.estate.owner,
            command_id=command_id,
            idempotency_key=key,
            traceparent="00-trace-span-01",
        )
        return await self.opening.open(point, request, partner, **kw)  # type: ignore[arg-type]

    async def manual(self, partner: Partner, note: str) -> OpenOutcome:
        point = await Directory(self.estate.db).access_point(DOOR)
        assert point is not None
        request = OpenRequest(Via.MANUAL, subject="op-1", command_id="cmd-m", note=note)
        return await self.opening.open(point, request, partner)  # type: ignore[arg-type]


async def audit(estate: Estate) -> list[dict[str, Any]]:
    rows = await AuditLog(estate.db).page()
    keep = ("actor", "action", "access_point_id", "decision", "reason", "command_id")
    return [{k: r[k] for k in keep} for r in rows if r["action"] in ("open", "manual_open")]


async def events(estate: Estate, user: str) -> list[dict[str, Any]]:
    return [
        {k: v for k, v in e.items() if k not in ("id", "occurred_at")}
        for e in await EventStore(estate.db).page(user)
    ]


def steps_without_times(steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in s.items() if k != "at"} for s in steps]


async def test_a_granted_tap_records_the_command_its_steps_audit_event_and_answer(
    estate: Estate,
) -> None:
    await estate.rules.grant(estate.owner, DOOR)
    desk, partner = Desk(estate), Partner(estate)
    partner.takes = 2.0
    with capture_logs() as logs:
        outcome = await desk.tap(partner, key="k1")
    assert outcome == OpenOutcome(
        Result.GRANTED, DOOR, "", command_id="cmd-1", vendor_command_id="v-1", online=True
    )
    assert partner.calls == [("sim-door-1", "cmd-1", "00-trace-span-01")]
    commands = Commands(estate.db)
    command = await commands.get("cmd-1")
    assert command is not None
    assert {k: command[k] for k in ("access_point_id", "user_id", "status", "reason")} == {
        "access_point_id": DOOR,
        "user_id": estate.owner,
        "status": "confirmed",
        "reason": "",
    }
    assert command["vendor_command_id"] == "v-1"
    assert command["created_at"] == T0 + 2.0
    steps = await commands.steps("cmd-1")
    assert steps_without_times(steps) == [
        {"step": "requested"},
        {"step": "decided", "decision": "granted", "by": "rules"},
        {"step": "accepted", "vendor_command_id": "v-1"},
        {"step": "confirmed"},
    ]
    assert [s["at"] for s in steps] == [T0, T0, T0 + 2.0, T0 + 2.0]
    assert await audit(estate) == [
        {
            "actor": f"user:{estate.owner}",
            "action": "open",
            "access_point_id": DOOR,
            "decision": "granted",
            "reason": "",
            "command_id": "cmd-1",
        }
    ]
    assert await events(estate, estate.owner) == [
        {"type": "access.granted", "access_point_id": DOOR, "command_id": "cmd-1"}
    ]
    assert [(c, e["type"], e["command_id"]) for c, e in desk.published] == [
        (f"user:{estate.owner}", "access.granted", "cmd-1")
    ]
    assert await commands.answer(estate.owner, "k1", now=T0) == (0, outcome.to_dict())
    decided = next(e for e in logs if e["event"] == "access_decided")
    assert {
        k: decided[k] for k in ("access_point_id", "via", "by", "result", "reason", "command_id")
    } == {
        "access_point_id": DOOR,
        "via": "app",
        "by": f"user:{estate.owner}",
        "result": "granted",
        "reason": "",
        "command_id": "cmd-1",
    }


async def test_a_repeated_key_replays_the_first_outcome_without_asking_the_partner_again(
    estate: Estate,
) -> None:
    await estate.rules.grant(estate.owner, DOOR)
    desk, partner = Desk(estate), Partner(estate)
    first = await desk.tap(partner, key="k1")
    again = await desk.tap(partner, key="k1", command_id="cmd-2")
    assert again == OpenOutcome.from_dict({**first.to_dict(), "replayed": True})
    assert len(partner.calls) == 1 and len(await audit(estate)) == 1
    other = await desk.tap(partner, key="k2", command_id="cmd-3")
    assert other.granted and not other.replayed and len(partner.calls) == 2


async def test_a_key_used_for_another_door_is_refused_without_asking_anyone(
    estate: Estate,
) -> None:
    await estate.rules.grant(estate.owner, DOOR)
    await estate.rules.grant(estate.owner, OTHER_DOOR)
    desk, partner = Desk(estate), Partner(estate)
    await desk.tap(partner, key="k1")
    reused = await desk.tap(partner, ap=OTHER_DOOR, key="k1", command_id="cmd-2")
    assert (reused.result, reused.reason) == (Result.REFUSED, "idempotency_key_reused")
    assert reused.access_point_id == OTHER_DOOR and not reused.replayed
    assert len(partner.calls) == 1 and len(await audit(estate)) == 1


async def test_an_answer_stored_a_day_ago_is_no_longer_replayed(estate: Estate) -> None:
    await estate.rules.grant(estate.owner, DOOR)
    desk, partner = Desk(estate), Partner(estate)
    await desk.tap(partner, key="k1")
    estate.clock.advance(86400.0)
    again = await desk.tap(partner, key="k1", command_id="cmd-2")
    assert again.granted and not again.replayed and len(partner.calls) == 2


async def test_a_tap_without_a_right_is_refused_by_our_rules_and_nothing_is_sent_or_kept(
    estate: Estate,
) -> None:
    desk, partner = Desk(estate), Partner(estate)
    outcome = await desk.tap(partner, key="k1")
    assert outcome == OpenOutcome(Result.REFUSED, DOOR, "no_right")
    assert partner.calls == []
    assert await Commands(estate.db).get("cmd-1") is None
    assert await audit(estate) == [
        {
            "actor": f"user:{estate.owner}",
            "action": "open",
            "access_point_id": DOOR,
            "decision": "denied",
            "reason": "no_right",
            "command_id": None,
        }
    ]
    assert await events(estate, estate.owner) == [
        {"type": "access.denied", "access_point_id": DOOR, "command_id": None, "reason": "no_right"}
    ]
    assert await Commands(estate.db).answer(estate.owner, "k1", now=T0) is None
    await estate.rules.grant(estate.owner, DOOR)
    assert (await desk.tap(partner, key="k1")).granted  # decided again, not replayed


@pytest.mark.parametrize(
    ("vendor_reason", "online", "lifecycle"),
    [("device_offline", False, "offline"), ("denied", True, "refused")],
)
async def test_a_vendor_refusal_is_a_final_answer_recorded_and_kept_under_the_key(
    estate: Estate, vendor_reason: str, online: bool, lifecycle: str
) -> None:
    await estate.rules.grant(estate.owner, DOOR)
    desk = Desk(estate)
    partner = Partner(estate, PartnerRefusedError(vendor_reason))
    partner.takes = 1.0
    outcome = await desk.tap(partner, key="k1")
    assert outcome == OpenOutcome(
        Result.REFUSED,
        DOOR,
        f"vendor_refused:{vendor_reason}",
        command_id="cmd-1",
        vendor_reason=vendor_reason,
        online=online,
    )
    command = await Commands(estate.db).get("cmd-1")
    assert command is not None
    assert (command["status"], command["reason"]) == ("failed", lifecycle)
    steps = await Commands(estate.db).steps("cmd-1")
    assert steps[-1] == {
        "step": "failed",
        "at": T0 + 1.0,
        "reason": lifecycle,
        "vendor_reason": vendor_reason,
    }
    assert (await audit(estate))[0]["reason"] == f"vendor_refused:{vendor_reason}"
    assert (await audit(estate))[0]["command_id"] == "cmd-1"
    assert (await events(estate, estate.owner))[0]["type"] == "access.denied"
    assert await Commands(estate.db).answer(estate.owner, "k1", now=T0) == (0, outcome.to_dict())
    assert (await desk.tap(partner, key="k1")).replayed


@pytest.mark.parametrize(
    ("error", "reason", "step", "detail"),
    [
        (PartnerTimeoutError("slow"), "partner_timeout", "timeout", ""),
        (
            PartnerUnavailableError("connection reset"),
            "partner_unavailable",
            "unavailable",
            "connection reset",
        ),
        (PartnerUnavailableError(), "partner_unavailable", "unavailable", "error"),
    ],
)
async def test_a_partner_that_got_the_command_but_did_not_answer_is_a_failure_worth_a_retry(
    estate: Estate, error: Exception, reason: str, step: str, detail: str
) -> None:
    await estate.rules.grant(estate.owner, DOOR)
    desk = Desk(estate)
    partner = Partner(estate, error)
    partner.takes = 3.0
    outcome = await desk.tap(partner, key="k1")
    assert outcome == OpenOutcome(Result.FAILED, DOOR, reason, command_id="cmd-1", detail=detail)
    command = await Commands(estate.db).get("cmd-1")
    assert command is not None
    assert (command["status"], command["reason"]) == ("failed", outcome.lifecycle_reason)
    steps = await Commands(estate.db).steps("cmd-1")
    assert steps[-1] == {"step": "failed", "at": T0 + 3.0, "reason": step}
    assert (await events(estate, estate.owner))[0] == {
        "type": "access.failed",
        "access_point_id": DOOR,
        "command_id": "cmd-1",
        "reason": reason,
    }
    assert await Commands(estate.db).answer(estate.owner, "k1", now=T0) is None
    partner.answer = None
    assert (await desk.tap(partner, key="k1")).granted  # a failure is retried, not replayed


@pytest.mark.parametrize(
    ("error", "reason", "retry_after"),
    [
        (CircuitOpenError("simulator", 7.5), "partner_circuit_open", 7.5),
        (BulkheadFullError("simulator", 4), "partner_busy", 1.0),
    ],
)
async def test_a_partner_not_asked_at_all_leaves_no_command(
    estate: Estate, error: Exception, reason: str, retry_after: float
) -> None:
    await estate.rules.grant(estate.owner, DOOR)
    desk = Desk(estate)
    outcome = await desk.tap(Partner(estate, error), key="k1")
    assert outcome == OpenOutcome(
        Result.FAILED, DOOR, reason, command_id="cmd-1", retry_after=retry_after
    )
    assert await Commands(estate.db).get("cmd-1") is None
    assert (await audit(estate))[0]["command_id"] is None
    assert (await audit(estate))[0]["reason"] == reason
    assert (await events(estate, estate.owner))[0]["type"] == "access.failed"


async def test_no_gateway_for_the_partner_fails_without_a_command(estate: Estate) -> None:
    await estate.rules.grant(estate.owner, DOOR)
    outcome = await Desk(estate).tap(None)
    assert outcome == OpenOutcome(
        Result.FAILED, DOOR, "no_partner", command_id="cmd-1", detail="No adapter for partner."
    )
    assert await Commands(estate.db).get("cmd-1") is None


@pytest.mark.parametrize(
    ("accepted", "expected"),
    [(-50.0, 0.0), (1.5, 1.5), (+50.0, 4.0)],
    ids=["before-the-request", "in-between", "after-the-answer"],
)
async def test_the_vendors_acceptance_time_is_kept_between_the_request_and_the_answer(
    estate: Estate, accepted: float, expected: float
) -> None:
    await estate.rules.grant(estate.owner, DOOR)
    at = dt.datetime.fromtimestamp(T0 + accepted, dt.UTC)
    partner = Partner(estate, OpenResult("sim-door-1", "v-9", accepted_at=at))
    partner.takes = 4.0
    await Desk(estate).tap(partner)
    steps = {s["step"]: s["at"] for s in await Commands(estate.db).steps("cmd-1")}
    assert steps["accepted"] == pytest.approx(T0 + expected)
    assert steps["confirmed"] == T0 + 4.0


async def test_a_tap_without_a_command_id_gets_a_fresh_one(estate: Estate) -> None:
    await estate.rules.grant(estate.owner, DOOR)
    partner = Partner(estate)
    desk = Desk(estate)
    one = await desk.tap(partner, command_id=None)
    two = await desk.tap(partner, command_id=None)
    assert one.command_id and two.command_id and one.command_id != two.command_id
    assert [c[1] for c in partner.calls] == [one.command_id, two.command_id]
    assert uuid.UUID(str(one.command_id))


async def test_the_fence_runs_inside_the_recording_unit_and_the_precheck_before_the_partner(
    estate: Estate,
) -> None:
    await estate.rules.grant(estate.owner, DOOR)
    partner = Partner(estate)
    order: list[str] = []

    def fence(conn: UnitConnection) -> None:
        order.append(f"fence:{conn.dialect}")

    def precheck() -> None:
        order.append(f"precheck:{len(partner.calls)}")

    await Desk(estate).tap(partner, fence=fence, precheck=precheck)
    assert order == ["precheck:0", f"fence:{estate.db.dialect}"]


async def test_a_failing_precheck_stops_the_open_before_the_partner_is_asked(
    estate: Estate,
) -> None:
    await estate.rules.grant(estate.owner, DOOR)
    partner = Partner(estate)

    def precheck() -> None:
        raise LookupError("not the owner")

    with pytest.raises(LookupError):
        await Desk(estate).tap(partner, precheck=precheck)
    assert partner.calls == [] and await audit(estate) == []


async def test_a_failing_fence_records_nothing(estate: Estate) -> None:
    await estate.rules.grant(estate.owner, DOOR)
    desk = Desk(estate)

    def fence(conn: UnitConnection) -> None:
        raise LookupError("the shard moved")

    with pytest.raises(LookupError):
        await desk.tap(Partner(estate), key="k1", fence=fence)
    assert await audit(estate) == [] and await Commands(estate.db).get("cmd-1") is None
    assert desk.published == []


async def test_a_manual_open_is_decided_by_the_operator_and_audited_with_the_reason(
    estate: Estate,
) -> None:
    desk = Desk(estate)
    outcome = await desk.manual(Partner(estate), "courier at the gate")
    assert outcome.granted  # no right needed: the operator decides
    assert await audit(estate) == [
        {
            "actor": "operator:op-1",
            "action": "manual_open",
            "access_point_id": DOOR,
            "decision": "granted",
            "reason": "courier at the gate",
            "command_id": "cmd-m",
        }
    ]
    steps = await Commands(estate.db).steps("cmd-m")
    assert steps[1]["by"] == "operator"
    command = await Commands(estate.db).get("cmd-m")
    assert command is not None and command["user_id"] == "op-1"


async def test_a_manual_open_the_vendor_refuses_is_audited_with_both_reasons(
    estate: Estate,
) -> None:
    outcome = await Desk(estate).manual(
        Partner(estate, PartnerRefusedError("denied")), "fire drill"
    )
    assert not outcome.granted
    entry = (await audit(estate))[0]
    assert (entry["decision"], entry["reason"]) == ("denied", "vendor_refused:denied; fire drill")


def test_a_keyed_request_has_a_stable_command_id_per_user_and_key() -> None:
    one = command_id_for("u1", "k1")
    assert one == command_id_for("u1", "k1")
    assert one == str(uuid.uuid5(uuid.NAMESPACE_URL, "propdev:u1:k1"))
    assert one != command_id_for("u2", "k1") and one != command_id_for("u1", "k2")
    fresh = command_id_for("u1", None)
    assert fresh != command_id_for("u1", None)
    assert uuid.UUID(fresh).version == 4


# -- plates and codes: who the audit names, what the owner is told ------------------------


async def present(
    desk: Desk, via: Via, value: object, *, ap: str = DOOR, occurred_at: float | None = None
) -> OpenOutcome:
    point = await Directory(desk.estate.db).access_point(ap)
    assert point is not None
    request = OpenRequest(via, value=value, occurred_at=occurred_at)
    return await desk.opening.open(point, request, Partner(desk.estate))  # type: ignore[arg-type]


async def all_audit(estate: Estate) -> list[tuple[str, str]]:
    return [(e["actor"], e["reason"]) for e in await audit(estate)]


async def test_an_unreadable_plate_is_audited_as_such(estate: Estate) -> None:
    outcome = await present(Desk(estate), Via.PLATE, "#!")
    assert (outcome.result, outcome.reason) == (Result.REFUSED, "plate_unreadable")
    assert await all_audit(estate) == [("plate:unreadable", "plate_unreadable")]


async def test_an_unknown_plate_is_audited_by_sixteen_characters_of_its_key(
    estate: Estate,
) -> None:
    await present(Desk(estate), Via.PLATE, "X999XX99")
    [(actor, reason)] = await all_audit(estate)
    assert reason == "unknown_plate"
    assert actor.startswith("plate:") and len(actor) == len("plate:") + 16


async def test_a_vehicles_owner_is_told_which_vehicle_opened_the_barrier(estate: Estate) -> None:
    await estate.rules.grant(estate.owner, DOOR)
    vehicle, _ = await estate.vehicles.register(estate.owner, "A123BC77")
    assert (await present(Desk(estate), Via.PLATE, "A123BC77")).granted
    [event] = await events(estate, estate.owner)
    assert {k: event[k] for k in ("type", "credential", "vehicle_id", "plate_hint")} == {
        "type": "access.automatic",
        "credential": "vehicle",
        "vehicle_id": vehicle.id,
        "plate_hint": "C77",
    }


async def test_a_plate_is_judged_at_the_pipelines_time_not_the_rules_own(estate: Estate) -> None:
    from propdev.access import Schedule

    schedule = Schedule.parse({"windows": [{"days": ["wed"], "from": "11:00", "until": "13:00"}]})
    await estate.rules.grant(estate.owner, DOOR, schedule)
    await estate.vehicles.register(estate.owner, "A123BC77")
    desk = Desk(estate)
    desk.opening.clock = lambda: T0  # the pipeline decides at noon ...
    estate.clock.advance(6 * 3600)  # ... while the rules' own clock says six in the evening
    assert (await present(desk, Via.PLATE, "A123BC77")).granted


async def pass_code(estate: Estate, max_uses: int = 5) -> tuple[str, str]:
    from propdev.access import PassRequest
    from propdev.access.passes import iso

    await estate.rules.grant(estate.owner, DOOR)
    issued, code = await estate.passes.create(
        estate.owner,
        PassRequest.parse(
            {
                "access_point_ids": [DOOR],
                "valid_from": iso(T0),
                "valid_until": iso(T0 + 3600),
                "max_uses": max_uses,
            },
            now=T0,
        ),
    )
    return issued.id, code


async def test_a_stale_code_is_not_even_looked_up(estate: Estate) -> None:
    _, code = await pass_code(estate)
    outcome = await present(Desk(estate), Via.CODE, code, occurred_at=T0 - 600)
    assert (outcome.result, outcome.reason) == (Result.REFUSED, "stale_event")
    assert await all_audit(estate) == [("pass:unchecked", "stale_event")]


async def test_codes_at_a_locked_keypad_and_unknown_codes_are_audited_apart(
    estate: Estate,
) -> None:
    from propdev.access import KeypadLockout, KeypadPolicy

    _, code = await pass_code(estate)
    desk = Desk(estate)
    desk.opening.lockout = KeypadLockout(KeypadPolicy(attempts=2, window=300, cooldown=600))
    wrong = "00000000" if code != "00000000" else "11111111"
    await present(desk, Via.CODE, wrong)
    await present(desk, Via.CODE, wrong)
    await present(desk, Via.CODE, code)
    assert await all_audit(estate) == [
        ("pass:unknown", "pass_unknown"),
        ("pass:unknown", "pass_unknown"),
        ("pass:unchecked", "locked_out"),
    ]


async def test_a_known_code_ends_a_run_of_unknown_ones(estate: Estate) -> None:
    from propdev.access import KeypadLockout, KeypadPolicy

    _, code = await pass_code(estate)
    desk = Desk(estate)
    desk.opening.lockout = KeypadLockout(KeypadPolicy(attempts=2, window=300, cooldown=600))
    wrong = "00000000" if code != "00000000" else "11111111"
    await present(desk, Via.CODE, wrong)
    assert (await present(desk, Via.CODE, code)).granted
    await present(desk, Via.CODE, wrong)
    assert (await present(desk, Via.CODE, code)).granted  # one unknown code since: not locked


async def test_a_pass_used_tells_its_owner_which_pass_and_how_many_uses(estate: Estate) -> None:
    pass_id, code = await pass_code(estate, max_uses=3)
    assert (await present(Desk(estate), Via.CODE, code)).granted
    [event] = await events(estate, estate.owner)
    assert {k: event[k] for k in ("type", "pass_id", "uses", "max_uses")} == {
        "type": "pass.used",
        "pass_id": pass_id,
        "uses": 1,
        "max_uses": 3,
    }


async def test_an_answer_stored_before_outcomes_were_is_replayed_for_its_door(
    estate: Estate,
) -> None:
    from propdev.storage.commands import sync_put_answer

    await estate.db.unit(
        lambda conn: sync_put_answer(
            conn,
            subject=estate.owner,
            key="old-key",
            status=200,
            body={"command_id": "cmd-old", "vendor_command_id": "v-old"},
            at=T0,
        )
    )
    partner = Partner(estate)
    replay = await Desk(estate).tap(partner, key="old-key")
    assert (replay.result, replay.command_id, replay.replayed) == (Result.GRANTED, "cmd-old", True)
    assert replay.access_point_id == DOOR and partner.calls == []


async def test_a_pass_the_vendor_refused_tells_its_owner_the_use_was_given_back(
    estate: Estate,
) -> None:
    pass_id, code = await pass_code(estate, max_uses=3)
    point = await Directory(estate.db).access_point(DOOR)
    assert point is not None
    desk = Desk(estate)
    refusing = Partner(estate, PartnerRefusedError("denied"))
    request = OpenRequest(Via.CODE, value=code)
    outcome = await desk.opening.open(point, request, refusing)  # type: ignore[arg-type]
    assert outcome.reason == "vendor_refused:denied"
    [event] = await events(estate, estate.owner)
    assert {k: event[k] for k in ("type", "pass_id", "uses", "max_uses")} == {
        "type": "pass.denied",
        "pass_id": pass_id,
        "uses": 0,
        "max_uses": 3,
    }


async def test_a_tap_is_judged_at_the_pipelines_time_not_the_rules_own(estate: Estate) -> None:
    from propdev.access import Schedule

    schedule = Schedule.parse({"windows": [{"days": ["wed"], "from": "11:00", "until": "13:00"}]})
    await estate.rules.grant(estate.owner, DOOR, schedule)
    desk = Desk(estate)
    desk.opening.clock = lambda: T0  # the pipeline decides at noon ...
    estate.clock.advance(6 * 3600)  # ... while the rules' own clock says six in the evening
    assert (await desk.tap(Partner(estate))).granted


async def test_an_event_two_minutes_old_is_still_acted_on_and_one_older_is_not(
    estate: Estate,
) -> None:
    await estate.rules.grant(estate.owner, DOOR)
    await estate.vehicles.register(estate.owner, "A123BC77")
    desk = Desk(estate)
    assert (await present(desk, Via.PLATE, "A123BC77", occurred_at=T0)).granted
    assert (await present(desk, Via.PLATE, "A123BC77", occurred_at=T0 - 120)).granted
    late = await present(desk, Via.PLATE, "A123BC77", occurred_at=T0 - 120.5)
    assert late.reason == "stale_event"


async def test_a_credential_the_pipeline_does_not_know_is_an_error(estate: Estate) -> None:
    point = await Directory(estate.db).access_point(DOOR)
    assert point is not None
    request = OpenRequest("fax", subject=estate.owner)  # type: ignore[arg-type]
    with pytest.raises(ValueError) as raised:
        await Desk(estate).opening.open(point, request, Partner(estate))  # type: ignore[arg-type]
    assert str(raised.value) == "unknown credential 'fax'"


async def test_a_refusal_by_our_rules_is_fenced_too(estate: Estate) -> None:
    def fence(conn: UnitConnection) -> None:
        raise LookupError("the shard moved")

    with pytest.raises(LookupError):
        await Desk(estate).tap(Partner(estate), fence=fence)  # no right: refused, not recorded
    assert await audit(estate) == []


async def test_the_decision_is_logged_with_its_reason(estate: Estate) -> None:
    with capture_logs() as logs:
        await Desk(estate).tap(Partner(estate))
    decided = next(e for e in logs if e["event"] == "access_decided")
    assert (decided["result"], decided["reason"], decided["command_id"]) == (
        "refused",
        "no_right",
        None,
    )
