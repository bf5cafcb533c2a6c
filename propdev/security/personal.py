"""Residents' personal data and account secrets at rest: which columns are sealed, and how.

``users.full_name``, ``users.phone`` and ``users.totp_secret`` hold values sealed under the
user's own **person key** (``propdev.security.person_keys``; ``p1:…``) and bound to the user's
id; ``users.phone_index`` is the phone's blind index (under the store's index key, so it
still finds the row). ``vehicles.plate_sealed`` is sealed under the owner's person key;
``vehicles.plate_key`` is its blind index. Erasure deletes the person key: every copy of those
values is then unreadable (crypto-shredding).

Values written before person keys (sealed under the store's data keys, ``v1:…``, or in clear
before migration 6) still open. ``seal_clear_rows`` (run at every start) moves them under
person keys and seals clear ones; ``reencrypt`` does that too and, after ``keys rotate``,
re-wraps the person keys and re-seals partners' secrets under the primary data key. Both work
in batches of ``BATCH`` rows, one transaction each, and can be interrupted and run again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any

import sqlalchemy as sa
import structlog

from propdev.security.blind_index import normalize_plate, phone_index, plate_index
from propdev.security.crypto import CryptoError, Vault, is_person_sealed, is_sealed, key_id
from propdev.security.person_keys import KEY_COLUMN, person_key_in, sync_runner, wrapped_key_of
from propdev.storage import Database, Row

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
PERSON_KEYS_MIGRATION = 33
BATCH = 200


def seal_user_fields(
    vault: Vault, user_id: str, person_key: bytes, **values: str | None
) -> dict[str, Any]:
    """Sealed column values for ``users`` under the user's ``person_key`` (``None`` and
    ``""`` stay as they are)."""
    out: dict[str, Any] = {}
    for column, value in values.items():
        if column not in USER_COLUMNS:
            raise ValueError(f"users.{column} is not a sealed column")
        out[column] = (
            vault.seal_person(person_key, value, table="users", column=column, row_id=user_id)
            if value
            else value
        )
    if "phone" in values:
        phone = values["phone"]
        out["phone_index"] = phone_index(vault, phone) if phone else None
    return out


def _wrapped(row: Mapping[str, Any], where: str) -> str | None:
    if KEY_COLUMN not in row:
        raise CryptoError(f"{where}: the row was read without its person key (wrapped_key_of)")
    wrapped = row[KEY_COLUMN]
    return None if wrapped is None else str(wrapped)


def open_user_field(vault: Vault, row: Mapping[str, Any], column: str) -> str:
    """A ``users`` column opened; a value under a person key needs the row read with
    ``USER_KEY`` (``PersonKeyDestroyedError`` when the person's key is gone)."""
    value = row.get(column)
    if not value:
        return ""
    user_id = str(row["id"])
    if is_person_sealed(str(value)):
        return vault.open_person(
            _wrapped(row, f"users.{column}"),
            user_id,
            str(value),
            table="users",
            column=column,
            row_id=user_id,
        )
    return vault.open_or_clear(str(value), table="users", column=column, row_id=user_id)


USER_KEY = wrapped_key_of("users.id")
"""Select it with a ``users`` row (``SELECT users.*, {USER_KEY} FROM users …``) for
``open_user_field``."""
VEHICLE_KEY = wrapped_key_of("vehicles.owner_id")
"""Select it with a ``vehicles`` row for ``open_plate_value``."""


def seal_plate_value(vault: Vault, person_key: bytes, plate: str, vehicle_id: str) -> str:
    """A plate sealed under its owner's ``person_key``, bound to the vehicle."""
    return vault.seal_person(person_key, plate, table="vehicles", column="plate", row_id=vehicle_id)


def open_plate_value(
    vault: Vault, sealed: str, vehicle_id: str, *, owner_id: str, wrapped: str | None
) -> str:
    """A plate opened: under the owner's person key (``wrapped``, as ``VEHICLE_KEY`` reads
    it) or, written before person keys, under the store's data key."""
    if is_person_sealed(sealed):
        return vault.open_person(
            wrapped, owner_id, sealed, table="vehicles", column="plate", row_id=vehicle_id
        )
    return vault.open_or_clear(sealed, table="vehicles", column="plate", row_id=vehicle_id)


def _table_exists(conn: Any, db: Database, table: str) -> bool:
    if db.dialect == "sqlite":
        sql = "SELECT name FROM sqlite_master WHERE type = 'table' AND name = :t"
    else:
        sql = "SELECT tablename FROM pg_tables WHERE tablename = :t"
    return conn.execute(sa.text(sql), {"t": table}).first() is not None


def _batches(
    db: Database, sql: str, step: Callable[[Any, Callable[..., list[Row]], Row], bool]
) -> int:
    """Run ``step(conn, run, row)`` over the rows of ``sql`` (``… WHERE id > :after ORDER BY
    id LIMIT :limit``), ``BATCH`` rows a transaction; return how many rows it changed."""
    changed, after = 0, ""
    while True:
        with db.sync_transaction() as conn:
            run = sync_runner(conn)
            rows = run(sql, after=after, limit=BATCH)
            for row in rows:
                changed += bool(step(conn, run, row))
        if len(rows) < BATCH:
            return changed
        after = str(rows[-1]["id"])


def _convert(db: Database, vault: Vault, *, only_clear: bool) -> int:
    """Move values sealed under the store's data keys (or in clear) under person keys; unless
    ``only_clear``, also re-wrap person keys and re-seal partners' secrets under the primary
    data key. (Every start runs it with ``only_clear``: the move to person keys is part of
    the start-up conversion.)"""
    primary = vault.primary_kid

    def personal_stale(value: Any) -> bool:
        return bool(value) and not is_person_sealed(str(value))

    def user(conn: Any, run: Callable[..., list[Row]], row: Row) -> bool:
        todo = [c for c in USER_COLUMNS if personal_stale(row[c])]
        needs_index = bool(row["phone"]) and not row["phone_index"]
        if not todo and not needs_index:
            return False
        clear = {c: open_user_field(vault, row, c) for c in USER_COLUMNS}
        values: dict[str, Any] = {}
        if todo:
            key = person_key_in(run, vault, str(row["id"]))
            values = seal_user_fields(vault, row["id"], key, **{c: clear[c] for c in todo})
        if needs_index or "phone" in todo:
            values["phone_index"] = phone_index(vault, clear["phone"])
        sets = ", ".join(f"{c} = :{c}" for c in values)
        run(f"UPDATE users SET {sets} WHERE id = :id", **values, id=row["id"])
        return True

    def vehicle(conn: Any, run: Callable[..., list[Row]], row: Row) -> bool:
        if not personal_stale(row["plate_sealed"]):
            return False
        owner = str(row["owner_id"])
        plate = open_plate_value(
            vault, row["plate_sealed"], row["id"], owner_id=owner, wrapped=row[KEY_COLUMN]
        )
        key = person_key_in(run, vault, owner)
        values = {"plate_sealed": seal_plate_value(vault, key, plate, row["id"])}
        if not is_sealed(row["plate_sealed"]):  # the key was the old unkeyed hash
            values["plate_key"] = plate_index(vault, normalize_plate(plate))
        sets = ", ".join(f"{c} = :{c}" for c in values)
        run(f"UPDATE vehicles SET {sets} WHERE id = :id", **values, id=row["id"])
        return True

    def rewrap(conn: Any, run: Callable[..., list[Row]], row: Row) -> bool:
        if key_id(str(row["wrapped"])) == primary:
            return False
        key = vault.unwrap_person_key(str(row["id"]), str(row["wrapped"]))
        run(
            "UPDATE person_keys SET wrapped = :w, kid = :kid WHERE user_id = :u",
            w=vault.wrap_person_key(str(row["id"]), key),
            kid=primary,
            u=row["id"],
        )
        return True

    changed = _batches(
        db,
        f"SELECT users.id, full_name, phone, totp_secret, phone_index, {USER_KEY} FROM users"
        " WHERE users.id > :after ORDER BY users.id LIMIT :limit",
        user,
    )
    with db.sync_transaction() as conn:
        has_vehicles = _table_exists(conn, db, "vehicles")
        has_partners = _has_migration(conn, PARTNERS_MIGRATION)
    if has_vehicles:
        changed += _batches(
            db,
            f"SELECT id, owner_id, plate_sealed, {VEHICLE_KEY} FROM vehicles"
            " WHERE id > :after ORDER BY id LIMIT :limit",
            vehicle,
        )
    if not only_clear:
        changed += _batches(
            db,
            "SELECT user_id AS id, wrapped FROM person_keys"
            " WHERE user_id > :after ORDER BY user_id LIMIT :limit",
            rewrap,
        )
    if not only_clear and has_partners:
        with db.sync_transaction() as conn:
            changed += _reseal_partners(conn, vault, lambda v: bool(v) and key_id(v) != primary)
    return changed


def _has_migration(conn: Any, version: int) -> bool:
    row = conn.execute(
        sa.text("SELECT version FROM schema_version WHERE version = :v"),
        {"v": version},
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
    """Seal every personal value still in clear, and move those sealed under the store's
    data keys under their person's key; return the number of rows changed."""
    changed = await asyncio.to_thread(_convert, db, vault, only_clear=True)
    if changed:
        log.info("clear_rows_sealed", rows=changed)
    return changed


def reencrypt(db: Database, vault: Vault) -> int:
    """Re-seal every value under the primary data key, person keys re-wrapped (sync: CLI or
    worker thread)."""
    return _convert(db, vault, only_clear=False)


async def count_stale(db: Database, vault: Vault) -> dict[str, int]:
    """How many sealed values each data key still protects (``keys status``): person keys
    count under the data key that wraps them, values under person keys as ``person``."""
    counts: dict[str, int] = {}
    rows = await db.fetch_all("SELECT full_name, phone, totp_secret FROM users")
    values = [r[c] for r in rows for c in USER_COLUMNS]
    values += [r["wrapped"] for r in await db.fetch_all("SELECT wrapped FROM person_keys")]
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
        elif is_person_sealed(value):
            counts["person"] = counts.get("person", 0) + 1
        elif value:
            counts["clear"] = counts.get("clear", 0) + 1
    return counts
