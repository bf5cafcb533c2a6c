"""Export of everything held on a resident, and its erasure, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from propdev.privacy import AlreadyErasedError, PersonalData, UnknownPersonError
from propdev.push import PushTokens
from propdev.security import create_user
from propdev.storage import Database
from propdev.storage.audit import AuditLog
from tests.unit.privacy.conftest import (
    DAY,
    NOW,
    OPERATOR,
    Cuts,
    add_audit,
    add_command,
    add_event,
    add_pass,
    add_resident,
    add_session,
    add_vehicle,
    count,
)

APNS_TOKEN = "5e" * 32


async def _holdings(db: Database) -> str:
    """A resident holding something in every table that names a person."""
    user_id = await add_resident(db)
    await add_vehicle(db, user_id, "A123BC77")
    await add_pass(db, user_id, "pass-1")
    await add_session(db, user_id, "fam-1", NOW + 30 * DAY)
    await add_command(db, user_id, "cmd-1", NOW - DAY)
    await add_event(db, user_id, NOW - DAY, command_id="cmd-1")
    await PushTokens(db, clock=lambda: NOW).register(
        user_id, {"platform": "apns", "token": APNS_TOKEN, "locale": "en"}
    )
    await db.execute(
        "INSERT INTO push_outbox (event_id, token_id, user_id, event, created_at, due_at) "
        "SELECT 1, id, user_id, '{}', 0, 0 FROM push_tokens WHERE user_id = :u",
        u=user_id,
    )
    await add_audit(
        db, at=NOW - DAY, actor="anonymous", subject=user_id, personal={"username": "rita"}
    )
    await add_audit(
        db, at=NOW - DAY, actor=f"user:{user_id}", subject=None, personal={"ip": "192.0.2.7"}
    )
    return user_id


async def test_an_export_holds_every_table_naming_the_resident_with_personal_data_opened(
    db: Database,
) -> None:
    user_id = await _holdings(db)
    others = await add_resident(db, "oleg")
    await add_event(db, others, NOW - DAY)

    document = await PersonalData(db, Cuts(), clock=lambda: NOW).export(OPERATOR, user_id)

    assert document["account"]["username"] == "rita"
    assert document["account"]["full_name"] == "Rita Rozova"
    assert document["account"]["phone"] == "+79990001122"
    assert [r["access_point_id"] for r in document["rights"]] == ["ap-1"]
    assert [v["plate"] for v in document["vehicles"]] == ["A123BC77"]
    assert [(p["id"], p["access_point_ids"]) for p in document["guest_passes"]] == [
        ("pass-1", ["ap-1"])
    ]
    assert [s["family_id"] for s in document["sessions"]] == ["fam-1"]
    assert [(t["platform"], t["token"]) for t in document["push_tokens"]] == [("apns", APNS_TOKEN)]
    assert document["account"]["locale"] == "en"
    assert "token_hash" not in document["sessions"][0]
    assert [e["command_id"] for e in document["events"]] == ["cmd-1"]
    assert [(c["id"], [s["step"] for s in c["steps"]]) for c in document["commands"]] == [
        ("cmd-1", ["sent"])
    ]
    assert sorted(str(a["personal"]) for a in document["audit"]) == sorted(
        [str({"username": "rita"}), str({"ip": "192.0.2.7"})]
    )


async def test_an_export_is_audited_with_the_resident_as_its_subject(db: Database) -> None:
    user_id = await add_resident(db)

    await PersonalData(db, Cuts(), clock=lambda: NOW).export(OPERATOR, user_id)

    rows = await db.fetch_all(
        "SELECT actor, subject, personal FROM audit WHERE action = :a", a="resident.export"
    )
    assert [dict(r) for r in rows] == [{"actor": OPERATOR, "subject": user_id, "personal": None}]


async def test_an_erasure_destroys_what_is_held_and_the_chain_still_verifies(
    db: Database,
) -> None:
    user_id = await _holdings(db)
    others = await add_resident(db, "oleg")
    await add_event(db, others, NOW - DAY)
    await add_audit(db, at=NOW, actor="anonymous", subject=others, personal={"username": "oleg"})
    cuts = Cuts()

    report = await PersonalData(db, cuts, clock=lambda: NOW).erase(OPERATOR, user_id)

    user = await db.fetch_one("SELECT * FROM users WHERE id = :u", u=user_id)
    assert user is not None
    assert (user["username"], user["full_name"], user["phone"], user["roles"]) == (
        f"~erased:{user_id}",
        "",
        "",
        "",
    )
    assert (user["phone_index"], user["totp_secret"]) == (None, None)
    for table, column in (
        ("rights", "user_id"),
        ("vehicles", "owner_id"),
        ("guest_passes", "owner_id"),
        ("oauth_refresh_tokens", "user_id"),
        ("events", "user_id"),
        ("commands", "user_id"),
        ("push_tokens", "user_id"),
        ("push_outbox", "user_id"),
    ):
        assert await count(db, f"{table} WHERE {column} = :u", u=user_id) == 0, table
    assert await count(db, "guest_pass_access_points") == 0
    assert await count(db, "command_steps") == 0
    assert (
        await count(
            db,
            "audit WHERE (subject = :u OR actor = :a) AND personal IS NOT NULL",
            u=user_id,
            a=f"user:{user_id}",
        )
        == 0
    )
    # Oleg keeps what is his.
    assert await count(db, "events WHERE user_id = :u", u=others) == 1
    assert await count(db, "audit WHERE subject = :u AND personal IS NOT NULL", u=others) == 1
    assert cuts.calls == [(user_id, NOW)]
    assert report.counts["vehicles"] == 1 and report.counts["events"] == 1
    assert report.counts["audit_personal_blanked"] == 2
    erased = await db.fetch_all("SELECT reason, subject FROM audit WHERE action = 'resident.erase'")
    assert len(erased) == 1 and erased[0]["subject"] == user_id
    assert "Rita" not in erased[0]["reason"] and "7999" not in erased[0]["reason"]
    assert await AuditLog(db).verify() == (True, 4, None)


async def test_an_erased_resident_is_not_exported_and_not_erased_twice(db: Database) -> None:
    user_id = await add_resident(db)
    service = PersonalData(db, Cuts(), clock=lambda: NOW)
    await service.erase(OPERATOR, user_id)
    entries = await count(db, "audit")

    with pytest.raises(UnknownPersonError):
        await service.export(OPERATOR, user_id)
    with pytest.raises(AlreadyErasedError) as raised:
        await service.erase(OPERATOR, user_id)

    assert raised.value.erased_at == NOW
    assert await count(db, "audit") == entries
    assert await count(db, "erasures") == 1


async def test_only_residents_are_exported_or_erased(db: Database) -> None:
    staff = await create_user(
        db, username="olga", password="pw-olga-123", roles=["operator"], full_name="Olga"
    )
    service = PersonalData(db, Cuts(), clock=lambda: NOW)

    for user_id in (staff, "nobody"):
        with pytest.raises(UnknownPersonError):
            await service.export(OPERATOR, user_id)
        with pytest.raises(UnknownPersonError):
            await service.erase(OPERATOR, user_id)
    assert await count(db, "erasures") == 0
    assert await count(db, "audit") == 0
