"""Crypto-shredding: a data key per person, destroyed by erasure, on SQLite and PostgreSQL.

A copy of a sealed value taken before the erasure (a dead tuple, a WAL segment, a replica, a
stray dump) is put back into the store, where the readers would open it: they cannot.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from typing import Any

import pytest

import propdev.security.personal as personal
from propdev.privacy import PersonalData
from propdev.security import (
    USER_KEY,
    PersonKeyDestroyedError,
    audit_opener,
    create_user,
    get_user,
    open_plate_value,
    open_user_field,
    vault_of,
)
from propdev.security.auth_audit import AuthAudit, Origin
from propdev.security.crypto import is_person_sealed, key_id
from propdev.security.personal import count_stale, reencrypt, seal_clear_rows
from propdev.storage import Database
from propdev.storage.audit import AuditLog, personal_digest, personal_text
from tests.unit.privacy.conftest import NOW, OPERATOR, Cuts, add_audit, add_resident, add_vehicle

ORIGIN = Origin(client_id="web", address="192.0.2.7")


async def _failed_login(db: Database, subject: str | None, username: str) -> dict[str, Any]:
    """A denied login on ``username`` as the authorization server audits it; its row."""
    await AuthAudit(db, clock=lambda: NOW).append(
        "auth.login",
        decision="denied",
        reason="bad_password",
        origin=ORIGIN,
        subject=subject,
        username=username,
    )
    row = await db.fetch_one("SELECT * FROM audit ORDER BY id DESC LIMIT 1")
    assert row is not None
    return row


async def _entries(db: Database) -> dict[str | None, Any]:
    """The audit listing's personal fields of the auth.login entries, by subject."""
    rows = await AuditLog(db).page(action="auth.", open_personal=audit_opener(vault_of(db)))
    return {r["subject"]: r["personal"] for r in rows}


async def _user_row(db: Database, user_id: str) -> dict[str, Any]:
    row = await db.fetch_one(f"SELECT users.*, {USER_KEY} FROM users WHERE id = :u", u=user_id)
    assert row is not None
    return row


async def test_values_copied_before_an_erasure_cannot_be_opened_after_it(db: Database) -> None:
    vault = vault_of(db)
    rita, oleg = await add_resident(db, "rita"), await add_resident(db, "oleg")
    plates = {
        rita: await add_vehicle(db, rita, "A123BC77"),
        oleg: await add_vehicle(db, oleg, "B456CE77"),
    }
    await _failed_login(db, rita, "rita")
    await _failed_login(db, oleg, "oleg")
    copies: dict[str, dict[str, str]] = {}
    for user_id in (rita, oleg):
        user = await _user_row(db, user_id)
        vehicle = await db.fetch_one(
            "SELECT plate_sealed FROM vehicles WHERE id = :v", v=plates[user_id]
        )
        entry = await db.fetch_one(
            "SELECT personal FROM audit WHERE subject = :u AND action = 'auth.login'", u=user_id
        )
        assert vehicle is not None and entry is not None
        copies[user_id] = {
            "phone": user["phone"],
            "plate": vehicle["plate_sealed"],
            "personal": entry["personal"],
        }
        assert all(is_person_sealed(v) for v in copies[user_id].values())

    report = await PersonalData(db, Cuts(), clock=lambda: NOW).erase(OPERATOR, rita)

    assert report.counts["person_keys"] == 1
    assert await db.fetch_one("SELECT 1 AS x FROM person_keys WHERE user_id = :u", u=rita) is None
    # The copies go back where the readers look for them.
    for user_id in (rita, oleg):
        await db.execute(
            "UPDATE users SET phone = :p WHERE id = :u", p=copies[user_id]["phone"], u=user_id
        )
        await db.execute(
            "UPDATE audit SET personal = :p WHERE subject = :u AND action = 'auth.login'",
            p=copies[user_id]["personal"],
            u=user_id,
        )
    with pytest.raises(PersonKeyDestroyedError):
        await get_user(db, rita)
    with pytest.raises(PersonKeyDestroyedError):
        open_user_field(vault, await _user_row(db, rita), "phone")
    with pytest.raises(PersonKeyDestroyedError):
        open_plate_value(vault, copies[rita]["plate"], plates[rita], owner_id=rita, wrapped=None)
    listed = await _entries(db)
    assert listed[rita] is None  # the sealed text is there; its key is not
    # Oleg's still open.
    oleg_user = await get_user(db, oleg)
    assert oleg_user is not None and oleg_user.phone == "+79990001122"
    wrapped = (await _user_row(db, oleg))["person_key"]
    assert (
        open_plate_value(vault, copies[oleg]["plate"], plates[oleg], owner_id=oleg, wrapped=wrapped)
        == "B456CE77"
    )
    assert listed[oleg] == {"username": "oleg", "client_id": "web", "address": "192.0.2.7"}


async def test_export_then_erase_then_the_chain_verifies(db: Database) -> None:
    rita = await add_resident(db, "rita")
    await add_vehicle(db, rita, "A123BC77")
    await _failed_login(db, rita, "rita")
    service = PersonalData(db, Cuts(), clock=lambda: NOW)

    document = await service.export(OPERATOR, rita)
    await service.erase(OPERATOR, rita)

    assert document["account"]["phone"] == "+79990001122"
    assert [v["plate"] for v in document["vehicles"]] == ["A123BC77"]
    assert [e["personal"] for e in document["audit"] if e["action"] == "auth.login"] == [
        {"username": "rita", "client_id": "web", "address": "192.0.2.7"}
    ]
    ok, checked, bad = await AuditLog(db).verify()
    assert (ok, bad) == (True, None) and checked == 3  # login, export, erase


async def test_a_format_4_digest_is_not_the_hash_of_the_clear_personal_fields(
    db: Database,
) -> None:
    rita = await add_resident(db, "rita")

    mine = await _failed_login(db, rita, "rita")
    no_ones = await _failed_login(db, None, "nobody")

    clear = personal_text({"username": "rita", "client_id": "web", "address": "192.0.2.7"})
    assert mine["hash_format"] == 4 and no_ones["hash_format"] == 4
    assert mine["personal_digest"] != hashlib.sha256(str(clear).encode()).hexdigest()
    assert mine["personal_digest"] == personal_digest(mine["personal"])
    assert "rita" not in mine["personal"] and "192.0.2.7" not in mine["personal"]
    assert is_person_sealed(mine["personal"])  # under Rita's key
    assert key_id(no_ones["personal"]) is not None  # no one's: under the store's data key
    listed = await _entries(db)
    assert listed[None] == {"username": "nobody", "client_id": "web", "address": "192.0.2.7"}
    assert await AuditLog(db).verify() == (True, 2, None)


async def test_key_rotation_rewraps_person_keys_and_everything_still_opens(
    db: Database,
) -> None:
    vault = vault_of(db)
    rita = await add_resident(db, "rita")
    vehicle_id = await add_vehicle(db, rita, "A123BC77")
    await _failed_login(db, rita, "rita")
    old = vault.primary_kid

    new = await asyncio.to_thread(vault.rotate)
    changed = await asyncio.to_thread(reencrypt, db, vault)

    keys = await db.fetch_all("SELECT wrapped, kid FROM person_keys")
    assert changed >= 1 and len(keys) == 1
    assert keys[0]["kid"] == new != old and key_id(keys[0]["wrapped"]) == new
    assert await asyncio.to_thread(reencrypt, db, vault) == 0  # re-runnable: nothing left
    vault.forget_person_keys()  # nothing opened from a cache
    user = await get_user(db, rita)
    assert user is not None and (user.full_name, user.phone) == ("Rita Rozova", "+79990001122")
    row = await db.fetch_one(
        "SELECT plate_sealed, (SELECT wrapped FROM person_keys WHERE user_id = owner_id) AS w "
        "FROM vehicles WHERE id = :v",
        v=vehicle_id,
    )
    assert row is not None
    plate = open_plate_value(
        vault, row["plate_sealed"], vehicle_id, owner_id=rita, wrapped=row["w"]
    )
    assert plate == "A123BC77"
    assert (await _entries(db))[rita] == {
        "username": "rita",
        "client_id": "web",
        "address": "192.0.2.7",
    }
    assert (await count_stale(db, vault)).get(old, 0) == 0


async def test_values_sealed_the_old_way_still_open_and_are_moved_under_person_keys(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    vault = vault_of(db)
    ids = [f"old-{n}" for n in range(3)]
    for user_id in ids:  # as written before person keys: under the store's data key
        await db.execute(
            "INSERT INTO users (id, username, password_hash, roles, full_name, phone, "
            "created_at) VALUES (:id, :u, 'x', 'resident', :n, :p, 0)",
            id=user_id,
            u=user_id,
            n=vault.seal("Old Name", table="users", column="full_name", row_id=user_id),
            p=vault.seal("+79990000001", table="users", column="phone", row_id=user_id),
        )
    await db.execute(
        "INSERT INTO vehicles (id, owner_id, plate_key, plate_sealed, created_at) "
        "VALUES ('veh-old', :o, 'k-old', :s, 0)",
        o=ids[0],
        s=vault.seal("A123BC77", table="vehicles", column="plate", row_id="veh-old"),
    )
    await add_audit(db, at=NOW, actor="anonymous", subject=ids[0], personal={"username": "x"})
    entry = await db.fetch_one("SELECT hash_format, personal FROM audit")
    assert entry is not None and entry["hash_format"] == 3  # an old entry: clear, format 3
    user = await get_user(db, ids[0])
    assert user is not None and user.phone == "+79990000001"  # opens as it is
    assert (await _entries(db))[ids[0]] == {"username": "x"}
    monkeypatch.setattr(personal, "BATCH", 2)  # three users: two batches

    changed = await seal_clear_rows(db, vault)

    assert changed == 4  # three users, one vehicle
    assert await seal_clear_rows(db, vault) == 0  # re-runnable
    for user_id in ids:
        row = await _user_row(db, user_id)
        assert is_person_sealed(row["phone"]) and is_person_sealed(row["full_name"])
        assert row["person_key"] is not None
        assert open_user_field(vault, row, "full_name") == "Old Name"
    row = await db.fetch_one("SELECT owner_id, plate_sealed FROM vehicles WHERE id = 'veh-old'")
    assert row is not None and is_person_sealed(row["plate_sealed"])
    wrapped = (await _user_row(db, ids[0]))["person_key"]
    assert (
        open_plate_value(vault, row["plate_sealed"], "veh-old", owner_id=ids[0], wrapped=wrapped)
        == "A123BC77"
    )
    assert (await count_stale(db, vault)).get("person") == 7  # 3 names, 3 phones, 1 plate
    assert await AuditLog(db).verify() == (True, 1, None)  # the format-3 entry still verifies
    assert json.loads(str((await db.fetch_one("SELECT personal FROM audit") or {})["personal"]))


async def test_an_account_gets_its_person_key_when_it_is_created(db: Database) -> None:
    user_id = await create_user(
        db, username="new", password="pw-new-12345", roles=["resident"], phone="+79990000002"
    )

    row = await _user_row(db, user_id)

    assert row["person_key"] is not None and is_person_sealed(row["phone"])
    assert key_id(row["person_key"]) == vault_of(db).primary_kid
