from __future__ import annotations

import time

from propdev.management import ConflictError, SessionCutoffs
from propdev.management.points import AccessPoints
from propdev.management.residents import Residents
from propdev.push import PushTokens
from propdev.registry import InProcessBus, Revocations
from propdev.storage import Database
from tests.unit.management.conftest import OPERATOR


def cutoffs() -> SessionCutoffs:
    return SessionCutoffs(Revocations(InProcessBus()), token_ttl=300)


async def test_moving_out_ends_rights_passes_vehicles_and_refresh_tokens_at_once(
    db: Database, resident: str
) -> None:
    now = time.time()
    await db.execute(
        "INSERT INTO guest_passes (id, owner_id, code_index, valid_from, valid_until, max_uses, "
        "created_at) VALUES ('p-1', :u, 'x', :t, :t2, 3, :t)",
        u=resident,
        t=now,
        t2=now + 3600,
    )
    await db.execute(
        "INSERT INTO vehicles (id, owner_id, plate_key, plate_sealed, created_at) "
        "VALUES ('v-1', :u, 'k', 's', :t)",
        u=resident,
        t=now,
    )
    await db.execute(
        "INSERT INTO oauth_refresh_tokens (token_hash, family_id, client_id, user_id, scope, amr, "
        "issued_at, expires_at) VALUES ('h', 'f', 'c', :u, 'api', '[]', :t, :t2)",
        u=resident,
        t=now,
        t2=now + 3600,
    )
    await PushTokens(db).register(resident, {"platform": "apns", "token": "7f" * 32})
    cut = cutoffs()
    residents = Residents(db, cut)
    report = await residents.move_out(OPERATOR, resident)
    assert {k: v for k, v in report.items() if k not in ("id", "moved_out_at")} == {
        "rights_ended": 1,
        "passes_revoked": 1,
        "vehicles_removed": 1,
        "refresh_tokens_revoked": 1,
    }
    assert cut.refuses(resident)
    assert await db.fetch_all("SELECT 1 AS x FROM rights WHERE user_id = :u", u=resident) == []
    assert await PushTokens(db).of(resident) == []  # their phones get no more pushes
    row = await db.fetch_one("SELECT revoked FROM oauth_refresh_tokens WHERE token_hash = 'h'")
    assert row is not None and bool(row["revoked"])
    assert (await residents.get(resident))["status"] == "moved_out"
    try:
        await residents.move_out(OPERATOR, resident)
    except ConflictError:
        pass
    else:
        raise AssertionError("a second move-out must be refused")

    audit = await db.fetch_all("SELECT action, reason FROM audit ORDER BY id")
    assert [a["action"] for a in audit] == [
        "guest_pass.revoke",
        "vehicle.remove",
        "resident.move_out",
        "auth.revoke",
    ]
    assert audit[3]["reason"] == (
        f"user_id={resident} cause=resident.move_out refresh_tokens=1 access_tokens=all"
    )
    assert audit[1]["reason"] == f"vehicle_id=v-1 owner_id={resident} cause=resident.move_out"
    assert all("Rita" not in a["reason"] and resident in a["reason"] for a in audit)

    # A node starting within a token lifetime refuses the resident's tokens too.
    fresh = cutoffs()
    assert not fresh.refuses(resident)
    assert await fresh.load(db) == 1 and fresh.refuses(resident)


async def test_deleting_an_access_point_ends_its_rights_and_revokes_passes_left_empty(
    db: Database, resident: str
) -> None:
    now = time.time()
    for pass_id, points in (("p-1", ["ap-1"]), ("p-2", ["ap-1", "ap-2"])):
        await db.execute(
            "INSERT INTO guest_passes (id, owner_id, code_index, valid_from, valid_until, "
            "max_uses, created_at) VALUES (:p, :u, :p, :t, :t2, 3, :t)",
            p=pass_id,
            u=resident,
            t=now,
            t2=now + 3600,
        )
        for ap in points:
            await db.execute(
                "INSERT INTO guest_pass_access_points (pass_id, access_point_id) VALUES (:p, :a)",
                p=pass_id,
                a=ap,
            )
    report = await AccessPoints(db).delete(OPERATOR, "ap-1")
    assert report == {"rights_ended": 1, "passes_changed": 2, "passes_revoked": 1}
    rows = await db.fetch_all("SELECT id, revoked_at FROM guest_passes ORDER BY id")
    assert [(r["id"], r["revoked_at"] is not None) for r in rows] == [("p-1", True), ("p-2", False)]
    audit = await db.fetch_all("SELECT actor, action, reason FROM audit ORDER BY id")
    assert [(a["actor"], a["action"]) for a in audit] == [
        (OPERATOR, "guest_pass.revoke"),
        (OPERATOR, "guest_pass.change"),
        (OPERATOR, "access_point.delete"),
    ]
    assert audit[1]["reason"] == (
        "pass_id=p-2 removed_access_point_id=ap-1 cause=access_point.delete"
    )
