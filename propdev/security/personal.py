"""Residents' personal data and account secrets at rest: which columns are sealed, and how.

``users.full_name``, ``users.phone`` and ``users.totp_secret`` hold sealed values
(``propdev.security.crypto``) bound to the user's id; ``users.phone_index`` is the phone's
blind index. ``vehicles.plate_sealed`` / ``vehicles.plate_key`` are the same for plates.

``seal_clear_rows`` converts rows written in clear before migration 6 (run at every start;
a no-op once done). ``reencrypt`` moves every sealed value to the primary data key after
``keys rotate``; it works in batches and can be interrupted and run again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
import structlog

from propdev.security.blind_index import normalize_plate, phone_index, plate_index
from propdev.security.crypto import Vault, is_sealed, key_id
from propdev.storage import Database

log = structlog.get_logger()

USER_COLUMNS = ("full_name", "phone", "totp_secret")
PARTNER_COLUMNS = (
    ("credential_sealed", "credential"),
    ("webhook_secret_sealed", "webhook_secret"),
    ("previous_secret_sealed", "previous_secret"),
)
"""Partners' secrets (``propdev.management.partners``): the column, and the name its sealed
value is bound to. Always sealed; re-sealed under the primary key by ``reencrypt``."""
PARTNERS_MIGRATION = 26
BATCH = 200


def seal_user_fields(vault: Vault, user_id: str, **values: str | None) -> dict[str, Any]:
    """Sealed column values for ``users`` (``None`` and ``""`` stay as they are)."""
    out: dict[str, Any] = {}
    for column, value in values.items():
        if column not in USER_COLUMNS:
            raise ValueError(f"users.{column} is not a sealed column")
        out[column] = (
            vault.seal(value, table="users", column=column, row_id=user_id) if value else value
        )
    if "phone" in values:
        phone = values["phone"]
        out["phone_index"] = phone_index(vault, phone) if phone else None
    return out


def open_user_field(vault: Vault, row: Mapping[str, Any], column: str) -> str:
    value = row.get(column)
    if not value:
        return ""
    return vault.open_or_clear(str(value), table="users", column=column, row_id=str(row["id"]))


def seal_plate_value(vault: Vault, plate: str, vehicle_id: str) -> str:
    return vault.seal(plate, table="vehicles", column="plate", row_id=vehicle_id)


def open_plate_value(vault: Vault, sealed: str, vehicle_id: str) -> str:
    return vault.open_or_clear(sealed, table="vehicles", column="plate", row_id=vehicle_id)


def _table_exists(conn: Any, db: Database, table: str) -> bool:
    if db.dialect == "sqlite":
        sql = "SELECT name FROM sqlite_master WHERE type = 'table' AND name = :t"
    else:
        sql = "SELECT tablename FROM pg_tables WHERE tablename = :t"
    return conn.execute(sa.text(sql), {"t": table}).first() is not None


def _convert(db: Database, vault: Vault, *, only_clear: bool) -> int:
    """Seal clear values (and, unless ``only_clear``, re-seal values under an older key)."""
    primary = vault.primary_kid

    def stale(value: Any) -> bool:
        if not value:
            return False
        if not is_sealed(str(value)):
            return True
        return not only_clear and key_id(str(value)) != primary

    changed = 0
    with db.sync_transaction() as conn:
        rows = conn.execute(
            sa.text("SELECT id, full_name, phone, totp_secret, phone_index FROM users")
        ).mappings()
        for row in list(rows):
            todo = [c for c in USER_COLUMNS if stale(row[c])]
            needs_index = bool(row["phone"]) and not row["phone_index"]
            if not todo and not needs_index:
                continue
            clear = {c: open_user_field(vault, row, c) for c in USER_COLUMNS}
            values = seal_user_fields(vault, row["id"], **{c: clear[c] for c in todo})
            if needs_index or "phone" in todo:
                values["phone_index"] = phone_index(vault, clear["phone"])
            sets = ", ".join(f"{c} = :{c}" for c in values)
            conn.execute(
                sa.text(f"UPDATE users SET {sets} WHERE id = :id"), {**values, "id": row["id"]}
            )
            changed += 1
        if _table_exists(conn, db, "vehicles"):
            rows = conn.execute(sa.text("SELECT id, plate_sealed FROM vehicles")).mappings()
            for row in list(rows):
                if not stale(row["plate_sealed"]):
                    continue
                plate = open_plate_value(vault, row["plate_sealed"], row["id"])
                values = {"plate_sealed": seal_plate_value(vault, plate, row["id"])}
                if not is_sealed(row["plate_sealed"]):  # the key was the old unkeyed hash
                    values["plate_key"] = plate_index(vault, normalize_plate(plate))
                sets = ", ".join(f"{c} = :{c}" for c in values)
                conn.execute(
                    sa.text(f"UPDATE vehicles SET {sets} WHERE id = :id"),
                    {**values, "id": row["id"]},
                )
                changed += 1
        if not only_clear and _has_partner_secrets(conn):
            changed += _reseal_partners(conn, vault, stale)
    return changed


def _has_partner_secrets(conn: Any) -> bool:
    row = conn.execute(
        sa.text("SELECT version FROM schema_version WHERE version = :v"),
        {"v": PARTNERS_MIGRATION},
    ).first()
    return row is not None


def _reseal_partners(conn: Any, vault: Vault, stale: Any) -> int:
    names = ", ".join(column for column, _ in PARTNER_COLUMNS)
    changed = 0
    for row in list(conn.execute(sa.text(f"SELECT id, {names} FROM partners")).mappings()):
        values = {
            column: vault.seal(
                vault.open(row[column], table="partners", column=bound, row_id=row["id"]),
                table="partners",
                column=bound,
                row_id=row["id"],
            )
            for column, bound in PARTNER_COLUMNS
            if stale(row[column])
        }
        if values:
            sets = ", ".join(f"{c} = :{c}" for c in values)
            conn.execute(
                sa.text(f"UPDATE partners SET {sets} WHERE id = :id"), {**values, "id": row["id"]}
            )
            changed += 1
    return changed


async def seal_clear_rows(db: Database, vault: Vault) -> int:
    """Seal every personal value still in clear; return the number of rows changed."""
    changed = await asyncio.to_thread(_convert, db, vault, only_clear=True)
    if changed:
        log.info("clear_rows_sealed", rows=changed)
    return changed


def reencrypt(db: Database, vault: Vault) -> int:
    """Re-seal every value under the primary data key (sync: CLI or worker thread)."""
    return _convert(db, vault, only_clear=False)


async def count_stale(db: Database, vault: Vault) -> dict[str, int]:
    """How many sealed values each data key still protects (``keys status``)."""
    counts: dict[str, int] = {}
    rows = await db.fetch_all("SELECT full_name, phone, totp_secret FROM users")
    values = [r[c] for r in rows for c in USER_COLUMNS]
    try:
        values += [
            r["plate_sealed"] for r in await db.fetch_all("SELECT plate_sealed FROM vehicles")
        ]
    except Exception:  # no vehicles table on this schema
        pass
    try:
        names = ", ".join(column for column, _ in PARTNER_COLUMNS)
        rows = await db.fetch_all(f"SELECT {names} FROM partners")
        values += [r[column] for r in rows for column, _ in PARTNER_COLUMNS]
    except Exception:  # a schema before partners' secrets
        pass
    for value in values:
        kid = key_id(value) if value else None
        if kid is not None:
            counts[kid] = counts.get(kid, 0) + 1
        elif value:
            counts["clear"] = counts.get("clear", 0) + 1
    return counts
