"""A migrated store (SQLite and the machine's PostgreSQL) with a vault, one resident who holds
something in every table that names a person, and helpers to write what they hold."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from propdev.config import Settings
from propdev.security import create_user, open_vault, person_key, vault_of
from propdev.security.blind_index import normalize_plate, plate_index
from propdev.security.personal import seal_plate_value
from propdev.storage import Database, migrate, run
from propdev.storage import audit as audit_log
from propdev.storage import events as event_log
from propdev.storage.audit import AuditRecord
from propdev.storage.directory import AccessPoint, Directory
from tests.support.postgres import fresh_database

OPERATOR = "operator:op-1"
DAY = 86400.0
NOW = 1_800_000_000.0  # 2027-01-15: the tests' "now"


@pytest.fixture(params=["sqlite", "postgresql"])
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    sqlite = contextlib.nullcontext(f"sqlite:///{tmp_path}/test.db")
    with fresh_database() if request.param == "postgresql" else sqlite as url:
        database = Database(url)
        try:
            await migrate(database)
            await open_vault(Settings.from_env({"PROPDEV_DATA_DIR": str(tmp_path)}), database)
            directory = Directory(database)
            await directory.put_site("site-1", "Site")
            await directory.put_building("bld-a", "site-1", "A")
            await directory.put_partner("sim", "sim", "simulator", [])
            await directory.put_access_point(
                AccessPoint("ap-1", "ap-1", "door", "site-1", "bld-a", "sim", "d-1")
            )
            yield database
        finally:
            await database.close()


@dataclass
class Cuts:
    """What an erasure asked to cut off: (user id, from)."""

    calls: list[tuple[str, float]] = field(default_factory=list)

    async def __call__(self, user_id: str, at: float) -> None:
        self.calls.append((user_id, at))


async def add_resident(db: Database, username: str = "rita") -> str:
    user_id = await create_user(
        db,
        username=username,
        password="pw-rita-123",
        roles=["resident"],
        full_name="Rita Rozova",
        phone="+79990001122",
    )
    await Directory(db).grant(user_id, "ap-1")
    return user_id


async def add_event(db: Database, user_id: str, at: float, command_id: str | None = None) -> None:
    async with db.transaction() as conn:
        await event_log.append(
            conn,
            user_id=user_id,
            type="access.granted",
            access_point_id="ap-1",
            command_id=command_id,
            occurred_at=at,
        )


async def add_command(db: Database, user_id: str, command_id: str, at: float) -> None:
    await db.execute(
        "INSERT INTO commands (id, access_point_id, user_id, status, created_at, updated_at) "
        "VALUES (:id, 'ap-1', :u, 'confirmed', :t, :t)",
        id=command_id,
        u=user_id,
        t=at,
    )
    await db.execute(
        "INSERT INTO command_steps (command_id, step, at) VALUES (:id, 'sent', :t)",
        id=command_id,
        t=at,
    )


async def add_audit(
    db: Database, *, at: float, actor: str, subject: str | None, personal: dict[str, str] | None
) -> None:
    await audit_log.AuditLog(db).append(
        AuditRecord(
            at=at,
            actor=actor,
            action="auth.login",
            access_point_id=None,
            decision="granted",
            subject=subject,
            personal=personal,
        )
    )


async def add_vehicle(db: Database, user_id: str, plate: str) -> str:
    vault = vault_of(db)
    vehicle_id = f"veh-{plate}"
    key = await person_key(db, vault, user_id)
    await db.execute(
        "INSERT INTO vehicles (id, owner_id, plate_key, plate_sealed, created_at) "
        "VALUES (:id, :u, :k, :s, :t)",
        id=vehicle_id,
        u=user_id,
        k=plate_index(vault, normalize_plate(plate)),
        s=seal_plate_value(vault, key, plate, vehicle_id),
        t=NOW,
    )
    return vehicle_id


async def add_pass(db: Database, user_id: str, pass_id: str) -> None:
    async with db.transaction() as conn:
        await run(
            conn,
            "INSERT INTO guest_passes (id, owner_id, code_index, valid_from, valid_until, "
            "max_uses, created_at) VALUES (:id, :u, 'idx', :t, :t2, 3, :t)",
            id=pass_id,
            u=user_id,
            t=NOW,
            t2=NOW + DAY,
        )
        await run(
            conn,
            "INSERT INTO guest_pass_access_points (pass_id, access_point_id) VALUES (:p, 'ap-1')",
            p=pass_id,
        )


async def add_session(db: Database, user_id: str, family: str, expires_at: float) -> None:
    await db.execute(
        "INSERT INTO oauth_refresh_tokens (token_hash, family_id, client_id, user_id, scope, "
        "amr, issued_at, expires_at) VALUES (:h, :f, 'mobile', :u, 'openid', 'pwd', :t, :e)",
        h=f"hash-{family}",
        f=family,
        u=user_id,
        t=expires_at - 30 * DAY,
        e=expires_at,
    )


async def count(db: Database, sql: str, **params: object) -> int:
    row = await db.fetch_one(f"SELECT COUNT(*) AS n FROM {sql}", **params)
    assert row is not None
    return int(row["n"])
