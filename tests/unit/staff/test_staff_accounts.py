"""Staff accounts' lifecycle on the store: what is written, what is refused (nothing written
then), scopes read back, the last organisation-wide admin kept."""

from __future__ import annotations

from typing import Any

import pytest

from propdev.staff import (
    InvalidStaffFieldError,
    NotPermittedError,
    OutOfScopeError,
    Role,
    Scope,
    Staff,
    StaffConflictError,
)
from propdev.storage import Database
from tests.unit.staff.conftest import Cuts


async def count(db: Database, table: str) -> int:
    row = await db.fetch_one(f"SELECT COUNT(*) AS n FROM {table}")
    assert row is not None
    return int(row["n"])


def new(username: str, roles: list[str], sites: Any) -> dict[str, Any]:
    return {"username": username, "full_name": username.title(), "roles": roles, "site_ids": sites}


async def test_a_created_account_has_a_scope_an_activation_code_and_an_audit_entry(
    db: Database, staff: Staff, boss: Scope
) -> None:
    created = await staff.create(boss, new("Olga", ["operator"], ["s1"]))
    assert created["username"] == "olga" and len(created["activation_code"]) == 14
    scope = await staff.scope_of(created["id"], [])
    assert scope == Scope(created["id"], frozenset({Role.OPERATOR}), frozenset({"s1"}))
    shown = await staff.get(boss, created["id"])
    assert (shown["status"], shown["site_ids"], shown["totp_enrolled"]) == (
        "pending",
        ["s1"],
        False,
    )
    entry = await db.fetch_one("SELECT actor, action, reason, subject FROM audit")
    assert entry is not None and dict(entry) == {
        "actor": f"operator:{boss.user_id}",
        "action": "operator.create",
        "reason": f"id={created['id']}",
        "subject": created["id"],
    }


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (new("x", ["janitor"], ["s1"]), InvalidStaffFieldError),
        (new("x", [], ["s1"]), InvalidStaffFieldError),
        ({**new("x", ["operator"], ["s1"]), "extra": 1}, InvalidStaffFieldError),
        (new("x", ["operator"], ["s1", "s9"]), OutOfScopeError),
        (new("x", ["operator"], []), InvalidStaffFieldError),
        (new("boss", ["operator"], ["s1"]), StaffConflictError),
    ],
)
async def test_bad_input_writes_nothing(
    db: Database, staff: Staff, boss: Scope, body: dict[str, Any], error: type[Exception]
) -> None:
    users, audit = await count(db, "users"), await count(db, "audit")
    with pytest.raises(error):
        await staff.create(boss, body)
    assert (await count(db, "users"), await count(db, "audit"), await count(db, "staff")) == (
        users,
        audit,
        0,
    )


async def test_a_scoped_admin_hands_out_only_its_own_sites_and_sees_only_its_staff(
    staff: Staff, boss: Scope
) -> None:
    made = await staff.create(boss, new("a1", ["admin"], ["s1"]))
    one = Scope(made["id"], frozenset({Role.ADMIN}), frozenset({"s1"}))
    other = await staff.create(boss, new("o2", ["operator"], ["s2"]))
    with pytest.raises(OutOfScopeError):
        await staff.create(one, new("x", ["operator"], ["s2"]))
    with pytest.raises(NotPermittedError):
        await staff.create(one, new("x", ["operator"], None))
    mine = await staff.create(one, new("o1", ["operator"], ["s1"]))
    assert {s["username"] for s in await staff.list(one)} == {"a1", "o1"}
    with pytest.raises(OutOfScopeError):
        await staff.get(one, other["id"])
    with pytest.raises(OutOfScopeError):
        await staff.disable(one, boss.user_id)  # organisation-wide: not its to see
    assert await staff.disable(one, mine["id"]) is True


async def test_disabling_cuts_the_account_and_its_scope_ends(
    db: Database, staff: Staff, boss: Scope, cuts: Cuts
) -> None:
    made = await staff.create(boss, new("olga", ["operator"], ["s1"]))
    assert await staff.disable(boss, made["id"]) is True
    assert cuts.users == [made["id"]]
    assert await staff.scope_of(made["id"], ["operator"]) is None
    assert await staff.disable(boss, made["id"]) is False  # once
    assert cuts.users == [made["id"]]
    with pytest.raises(StaffConflictError):
        await staff.change(boss, made["id"], {"full_name": "Back"})


async def test_the_last_organisation_wide_admin_is_kept(staff: Staff, boss: Scope) -> None:
    with pytest.raises(StaffConflictError):
        await staff.disable(boss, boss.user_id)
    with pytest.raises(StaffConflictError):
        await staff.change(boss, boss.user_id, {"site_ids": ["s1"]})
    with pytest.raises(StaffConflictError):
        await staff.change(boss, boss.user_id, {"roles": ["auditor"]})
    second = await staff.create(boss, new("deputy", ["admin"], None))
    assert await staff.disable(boss, boss.user_id) is True  # another one is left
    with pytest.raises(StaffConflictError):
        await staff.disable(boss, second["id"])


async def test_a_2fa_reset_drops_the_seed_and_issues_a_new_code(
    db: Database, staff: Staff, boss: Scope
) -> None:
    made = await staff.create(boss, new("olga", ["auditor"], None))
    await db.execute("UPDATE users SET totp_secret = 'sealed' WHERE id = :id", id=made["id"])
    reset = await staff.reset_2fa(boss, made["id"])
    assert reset["activation_code"] != made["activation_code"]
    shown = await staff.get(boss, made["id"])
    assert (shown["status"], shown["totp_enrolled"]) == ("pending", False)
    live = await db.fetch_all(
        "SELECT id FROM account_codes WHERE user_id = :u AND used_at IS NULL", u=made["id"]
    )
    assert len(live) == 1  # the first code retired


async def test_the_visible_estate_of_a_scope(db: Database, staff: Staff, boss: Scope) -> None:
    from propdev.storage.directory import AccessPoint, Directory

    directory = Directory(db)
    await directory.put_building("b1", "s1", "B1")
    await directory.put_building("b2", "s2", "B2")
    await directory.put_partner("p1", "p1", "simulator", [])
    await directory.put_partner("p2", "p2", "simulator", [])
    await directory.put_access_point(AccessPoint("d1", "D1", "door", "s1", "b1", "p1", "x1"))
    await directory.put_access_point(AccessPoint("d2", "D2", "door", "s2", "b2", "p2", "x2"))
    visible = await staff.visible(Scope("u", frozenset({Role.OPERATOR}), frozenset({"s1"})))
    assert (visible.access_points, visible.partners) == (frozenset({"d1"}), frozenset({"p1"}))
    assert visible.actor("device:d1") and not visible.actor("device:d2")
    assert not visible.actor("partner:p1")  # the organisation's
    tree = {
        "supervisors": [{"supervisors": [], "actors": [{"id": "device:d1"}, {"id": "device:d2"}]}],
        "actors": [],
    }
    assert visible.tree(tree)["supervisors"][0]["actors"] == [{"id": "device:d1"}]
