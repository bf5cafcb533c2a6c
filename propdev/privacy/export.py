"""Everything held on one resident, for them (152-FZ art. 14): one JSON document.

Each part names the table it comes from (``docs/personal-data.md`` lists them); sealed columns
are opened, secrets are not shown (password hash, TOTP secret, token and code hashes,
recovery-code hashes: that they exist and when, not what they are). Audit entries are those
whose ``subject`` is the resident or whose actor is the resident (``user:<id>``), with their
personal fields while they are kept.
"""

from __future__ import annotations

import json
from typing import Any

from propdev.security import (
    USER_KEY,
    VEHICLE_KEY,
    User,
    audit_opener,
    open_plate_value,
    vault_of,
)
from propdev.storage import Database, Row
from propdev.storage.audit import SUBJECT_KEY, personal_of
from propdev.storage.events import render

FORMAT = 1  # the export document's version
RESIDENT_ROLE = "resident"


def user_actor(user_id: str) -> str:
    """The audit actor of a resident's own actions (``propdev.access.trail``'s)."""
    return f"user:{user_id}"


async def find_resident(db: Database, user_id: str) -> Row | None:
    """The ``users`` row of the resident ``user_id``; None when there is none (an erased
    resident has no role left, so none either)."""
    row = await db.fetch_one(f"SELECT users.*, {USER_KEY} FROM users WHERE id = :id", id=user_id)
    if row is None or RESIDENT_ROLE not in str(row["roles"]).split(","):
        return None
    return row


async def erased_at(db: Database, user_id: str) -> float | None:
    row = await db.fetch_one("SELECT erased_at FROM erasures WHERE user_id = :u", u=user_id)
    return None if row is None else float(row["erased_at"])


async def collect(db: Database, row: Row, *, now: float) -> dict[str, Any]:
    """The export document of the resident whose ``users`` row is ``row``."""
    user_id = str(row["id"])
    vault = vault_of(db)
    user = User.from_row(row, vault)
    return {
        "format": FORMAT,
        "exported_at": now,
        "account": {
            "id": user.id,
            "username": user.username,
            "full_name": user.full_name,
            "phone": user.phone,
            "roles": list(user.roles),
            "created_at": row["created_at"],
            "second_factor": user.has_totp,
            "locale": row.get("locale", "ru"),
            "recovery_codes": await _all(
                db,
                "SELECT created_at, used_at FROM user_recovery_codes WHERE user_id = :u "
                "ORDER BY created_at",
                user_id,
            ),
        },
        "residency": await _residency(db, user_id),
        "rights": [
            {**r, "schedule": json.loads(r["schedule"]) if r["schedule"] else None}
            for r in await _all(
                db,
                "SELECT access_point_id, schedule FROM rights WHERE user_id = :u "
                "ORDER BY access_point_id",
                user_id,
            )
        ],
        "vehicles": [
            {
                "id": v["id"],
                "plate": open_plate_value(
                    vault, v["plate_sealed"], v["id"], owner_id=user_id, wrapped=v["person_key"]
                ),
                "created_at": v["created_at"],
            }
            for v in await _all(
                db,
                f"SELECT id, plate_sealed, created_at, {VEHICLE_KEY} FROM vehicles "
                "WHERE owner_id = :u ORDER BY created_at",
                user_id,
            )
        ],
        "guest_passes": await _passes(db, user_id),
        "push_tokens": await _all(
            db,
            "SELECT id, platform, token, created_at FROM push_tokens WHERE user_id = :u "
            "ORDER BY created_at",
            user_id,
        ),
        "sessions": await _all(
            db,
            "SELECT family_id, client_id, scope, amr, issued_at, expires_at, rotated, revoked "
            "FROM oauth_refresh_tokens WHERE user_id = :u ORDER BY issued_at",
            user_id,
        ),
        "authorization_codes": await _all(
            db,
            "SELECT client_id, scope, auth_time, expires_at, used FROM oauth_codes "
            "WHERE user_id = :u ORDER BY auth_time",
            user_id,
        ),
        "events": [
            render(e)
            for e in await _all(db, "SELECT * FROM events WHERE user_id = :u ORDER BY id", user_id)
        ],
        "commands": await _commands(db, user_id),
        "cached_answers": await _all(
            db,
            "SELECT key, status, created_at FROM idempotency WHERE subject = :u "
            "ORDER BY created_at",
            user_id,
        ),
        "meter_readings": await _all(
            db,
            "SELECT r.id, r.meter_id, m.type AS meter_type, m.apartment_id, r.value_milli, "
            "r.taken_at, r.submitted_at, r.upstream_id FROM meter_readings r "
            "JOIN utility_meters m ON m.id = r.meter_id WHERE r.user_id = :u "
            "ORDER BY r.submitted_at",
            user_id,
        ),
        "audit": await _audit(db, user_id),
    }


async def _all(db: Database, sql: str, user_id: str) -> list[dict[str, Any]]:
    return [dict(r) for r in await db.fetch_all(sql, u=user_id)]


async def _residency(db: Database, user_id: str) -> dict[str, Any] | None:
    row = await db.fetch_one(
        "SELECT r.apartment_id, a.number AS apartment_number, a.building_id, r.since, "
        "r.moved_out_at FROM residencies r LEFT JOIN apartments a ON a.id = r.apartment_id "
        "WHERE r.user_id = :u",
        u=user_id,
    )
    return None if row is None else dict(row)


async def _passes(db: Database, user_id: str) -> list[dict[str, Any]]:
    passes = await _all(
        db,
        "SELECT id, valid_from, valid_until, max_uses, uses, revoked_at, created_at "
        "FROM guest_passes WHERE owner_id = :u ORDER BY created_at",
        user_id,
    )
    points = await _all(
        db,
        "SELECT p.pass_id, p.access_point_id FROM guest_pass_access_points p "
        "JOIN guest_passes g ON g.id = p.pass_id WHERE g.owner_id = :u "
        "ORDER BY p.access_point_id",
        user_id,
    )
    for found in passes:
        found["access_point_ids"] = [
            p["access_point_id"] for p in points if p["pass_id"] == found["id"]
        ]
    return passes


async def _commands(db: Database, user_id: str) -> list[dict[str, Any]]:
    commands = await _all(
        db,
        "SELECT id, access_point_id, status, reason, created_at, updated_at FROM commands "
        "WHERE user_id = :u ORDER BY created_at",
        user_id,
    )
    steps = await _all(
        db,
        "SELECT s.command_id, s.step, s.at, s.data FROM command_steps s "
        "JOIN commands c ON c.id = s.command_id WHERE c.user_id = :u ORDER BY s.id",
        user_id,
    )
    for command in commands:
        command["steps"] = [
            {"step": s["step"], "at": s["at"], "data": json.loads(s["data"] or "{}")}
            for s in steps
            if s["command_id"] == command["id"]
        ]
    return commands


async def _audit(db: Database, user_id: str) -> list[dict[str, Any]]:
    rows = await db.fetch_all(
        "SELECT id, at, actor, action, access_point_id, decision, reason, command_id, "
        f"subject, personal, hash_format, {SUBJECT_KEY} FROM audit "
        "WHERE subject = :u OR actor = :a ORDER BY id",
        u=user_id,
        a=user_actor(user_id),
    )
    opener = audit_opener(vault_of(db))
    return [
        {
            **{k: v for k, v in r.items() if k not in ("hash_format", "person_key")},
            "personal": personal_of(r, opener),
        }
        for r in rows
    ]
