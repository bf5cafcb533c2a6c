"""Guest passes: validation, codes kept hashed, uses counted atomically, revocation, windows."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest

from propdev.access import InvalidFieldError, NotEntitledError, PassRequest
from propdev.access.passes import iso
from tests.unit.access.conftest import BARRIER, DOOR, NOON_WEDNESDAY, OTHER_DOOR, Estate

HOUR = 3600.0


def body(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "access_point_ids": [DOOR],
        "valid_from": iso(NOON_WEDNESDAY),
        "valid_until": iso(NOON_WEDNESDAY + 2 * HOUR),
        "max_uses": 2,
    }
    base.update(overrides)
    return base


def request(**overrides: Any) -> PassRequest:
    return PassRequest.parse(body(**overrides), now=NOON_WEDNESDAY)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"access_point_ids": []}, "access_point_ids"),
        ({"access_point_ids": "ap-door"}, "access_point_ids"),
        ({"access_point_ids": [DOOR] * 3 + [f"ap-{i}" for i in range(20)]}, "access_point_ids"),
        ({"valid_from": "tomorrow"}, "valid_from"),
        ({"valid_from": "2025-01-15T12:00:00"}, "valid_from"),  # no offset
        ({"valid_from": iso(NOON_WEDNESDAY - 2 * HOUR)}, "valid_from"),  # in the past
        ({"valid_until": iso(NOON_WEDNESDAY)}, "valid_until"),  # not after valid_from
        ({"valid_until": iso(NOON_WEDNESDAY + 31 * 24 * HOUR)}, "valid_until"),  # too long
        ({"max_uses": 0}, "max_uses"),
        ({"max_uses": 101}, "max_uses"),
        ({"max_uses": True}, "max_uses"),
        ({"max_uses": "3"}, "max_uses"),
    ],
)
def test_a_bad_request_names_its_field(overrides: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidFieldError) as caught:
        request(**overrides)
    assert caught.value.field == field


def test_a_good_request_parses_offsets_and_removes_repeated_ids() -> None:
    parsed = PassRequest.parse(
        body(access_point_ids=[DOOR, DOOR], valid_from="2025-01-15T12:00:00+03:00"),
        now=NOON_WEDNESDAY,
    )
    assert parsed.access_point_ids == (DOOR,)
    assert parsed.valid_from == datetime(2025, 1, 15, 9, tzinfo=UTC).timestamp()


async def test_a_pass_only_covers_access_points_the_owner_has_a_right_to(estate: Estate) -> None:
    await estate.rules.grant(estate.owner, DOOR)
    with pytest.raises(NotEntitledError) as caught:
        await estate.passes.create(estate.owner, request(access_point_ids=[DOOR, OTHER_DOOR]))
    assert caught.value.access_point_ids == [OTHER_DOOR]
    assert await estate.passes.of(estate.owner) == []


async def test_the_code_is_never_stored_and_opens_only_its_access_points_until_used_up(
    estate: Estate,
) -> None:
    await estate.rules.grant(estate.owner, DOOR)
    issued, code = await estate.passes.create(estate.owner, request(max_uses=2))
    assert len(code) == 8 and code.isdigit()
    rows = await estate.db.fetch_all("SELECT * FROM guest_passes")
    assert not any(code in str(v) for row in rows for v in row.values())

    wrong_place = await estate.passes.claim(code, OTHER_DOOR, at=estate.clock())
    assert (wrong_place.granted, wrong_place.reason) == (False, "pass_not_for_access_point")
    first = await estate.passes.claim(code, DOOR, at=estate.clock())
    second = await estate.passes.claim(f"propdev:pass:{code}", DOOR, at=estate.clock())  # QR
    third = await estate.passes.claim(code, DOOR, at=estate.clock())
    assert [c.granted for c in (first, second, third)] == [True, True, False]
    assert third.reason == "pass_used_up"
    assert second.guest_pass is not None and second.guest_pass.uses == 2
    assert (await estate.passes.get(estate.owner, issued.id)).status(estate.clock()) == "used_up"


async def test_two_presentations_at_once_cannot_exceed_max_uses(estate: Estate) -> None:
    await estate.rules.grant(estate.owner, DOOR)
    await estate.rules.grant(estate.owner, BARRIER)
    issued, code = await estate.passes.create(
        estate.owner, request(access_point_ids=[DOOR, BARRIER], max_uses=1)
    )
    claims = await asyncio.gather(
        *(estate.passes.claim(code, ap, at=estate.clock()) for ap in [DOOR, BARRIER] * 4)
    )
    assert sum(c.granted for c in claims) == 1
    assert (await estate.passes.get(estate.owner, issued.id)).uses == 1


async def test_revocation_and_the_window_stop_the_code(estate: Estate) -> None:
    await estate.rules.grant(estate.owner, DOOR)
    _, later_code = await estate.passes.create(
        estate.owner,
        request(valid_from=iso(NOON_WEDNESDAY + HOUR), valid_until=iso(NOON_WEDNESDAY + 2 * HOUR)),
    )
    early = await estate.passes.claim(later_code, DOOR, at=estate.clock())
    assert early.reason == "pass_not_yet_valid"
    estate.clock.advance(HOUR)
    assert (await estate.passes.claim(later_code, DOOR, at=estate.clock())).granted
    estate.clock.advance(HOUR)
    assert (await estate.passes.claim(later_code, DOOR, at=estate.clock())).reason == "pass_expired"

    issued, code = await estate.passes.create(
        estate.owner,
        request(valid_from=iso(estate.clock()), valid_until=iso(estate.clock() + HOUR)),
    )
    revoked = await estate.passes.revoke(estate.owner, issued.id)
    assert revoked.status(estate.clock()) == "revoked"
    assert (await estate.passes.claim(code, DOOR, at=estate.clock())).reason == "pass_revoked"
    assert (await estate.passes.claim("00000000", DOOR, at=estate.clock())).reason == "pass_unknown"
    assert (await estate.passes.claim("12", DOOR, at=estate.clock())).guest_pass is None


async def test_a_pass_never_opens_more_than_its_owner_may_now(estate: Estate) -> None:
    await estate.rules.grant(estate.owner, DOOR)
    _, code = await estate.passes.create(estate.owner, request())
    await estate.rules.withdraw(estate.owner, DOOR)
    claim = await estate.passes.claim(code, DOOR, at=estate.clock())
    assert (claim.granted, claim.reason) == (False, "owner_no_right")


async def test_another_residents_pass_is_not_found(estate: Estate) -> None:
    from propdev.access import PassNotFoundError

    await estate.rules.grant(estate.owner, DOOR)
    issued, _ = await estate.passes.create(estate.owner, request())
    with pytest.raises(PassNotFoundError):
        await estate.passes.revoke(estate.neighbour, issued.id)
    with pytest.raises(PassNotFoundError):
        await estate.passes.get(estate.neighbour, issued.id)
    assert (await estate.passes.get(estate.owner, issued.id)).revoked_at is None
    assert await estate.passes.of(estate.neighbour) == []


async def audit_rows(estate: Estate) -> list[dict[str, Any]]:
    rows = await estate.db.fetch_all("SELECT actor, action, reason FROM audit ORDER BY id")
    return [dict(r) for r in rows]


async def test_issuing_and_revoking_a_pass_are_audited_by_who_did_it_without_the_code(
    estate: Estate,
) -> None:
    from propdev.storage.audit import AuditLog

    await estate.rules.grant(estate.owner, DOOR)
    issued, code = await estate.passes.create(estate.owner, request(max_uses=3))
    await estate.passes.revoke(estate.owner, issued.id)
    await estate.passes.revoke(estate.owner, issued.id)  # changes nothing: no entry
    second, _ = await estate.passes.create(estate.owner, request())
    await estate.passes.revoke(None, second.id, actor="operator:op-1")

    rows = await audit_rows(estate)
    assert [(r["actor"], r["action"]) for r in rows] == [
        (f"user:{estate.owner}", "guest_pass.create"),
        (f"user:{estate.owner}", "guest_pass.revoke"),
        (f"user:{estate.owner}", "guest_pass.create"),
        ("operator:op-1", "guest_pass.revoke"),
    ]
    assert f"pass_id={issued.id}" in rows[0]["reason"]
    assert f"access_point_ids={DOOR}" in rows[0]["reason"] and "max_uses=3" in rows[0]["reason"]
    assert rows[3]["reason"] == f"pass_id={second.id} owner_id={estate.owner}"
    assert not any(code in r["reason"] for r in rows)
    assert await AuditLog(estate.db).verify() == (True, 4, None)


async def test_a_refused_pass_is_audited_denied_and_issues_nothing(estate: Estate) -> None:
    from propdev.access import TooManyPassesError
    from propdev.access.passes import MAX_ACTIVE_PER_OWNER
    from propdev.storage.audit import AuditLog

    await estate.rules.grant(estate.owner, DOOR)
    with pytest.raises(NotEntitledError):
        await estate.passes.create(estate.owner, request(access_point_ids=[OTHER_DOOR]))
    for _ in range(MAX_ACTIVE_PER_OWNER):
        await estate.passes.create(estate.owner, request())
    with pytest.raises(TooManyPassesError):
        await estate.passes.create(estate.owner, request())
    rows = [
        dict(r)
        for r in await estate.db.fetch_all(
            "SELECT actor, action, decision, reason, subject FROM audit ORDER BY id"
        )
    ]
    assert len(await estate.passes.of(estate.owner)) == MAX_ACTIVE_PER_OWNER
    assert [r["decision"] for r in rows] == [
        "denied",
        *["granted"] * MAX_ACTIVE_PER_OWNER,
        "denied",
    ]
    refused = [r for r in rows if r["decision"] == "denied"]
    owner = estate.owner
    assert refused == [
        {
            "actor": f"user:{owner}",
            "action": "guest_pass.create",
            "decision": "denied",
            "reason": f"not_entitled owner_id={owner} access_point_ids={OTHER_DOOR}",
            "subject": owner,
        },
        {
            "actor": f"user:{owner}",
            "action": "guest_pass.create",
            "decision": "denied",
            "reason": f"too_many_passes owner_id={owner}",
            "subject": owner,
        },
    ]
    assert await AuditLog(estate.db).verify() == (True, len(rows), None)
    with pytest.raises(ValueError, match="actor"):
        await estate.passes.revoke(None, "any-pass")  # no owner and no actor
