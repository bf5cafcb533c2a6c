"""Residents' vehicles and the plates a barrier camera recognises.

A plate is normalised once (``normalise_plate``) and looked up only by ``plate_key`` of the
normal form; the plate itself is kept in ``plate_sealed``, written by ``seal_plate`` and read
by ``unseal_plate`` and never queried, so it can be encrypted at rest without touching the
lookups.
"""

from __future__ import annotations

import re
import time
import uuid
from dataclasses import dataclass
from typing import Any

import propdev.access.trail as trail
from propdev.access.errors import (
    InvalidPlateError,
    PlateTakenError,
    TooManyVehiclesError,
    VehicleNotFoundError,
)
from propdev.access.rules import Clock
from propdev.storage import Database, Row, UnitConnection, audit

MAX_VEHICLES = 5
# The owner's wrapped person key comes with each row (``propdev.security.person_keys``).
_COLUMNS = (
    "id, owner_id, plate_sealed, created_at, (SELECT wrapped FROM person_keys"
    " WHERE person_keys.user_id = vehicles.owner_id) AS person_key"
)
_BY_PLATE = f"SELECT {_COLUMNS} FROM vehicles WHERE plate_key = :k"
HINT_LENGTH = 3

# Russian plates use the twelve Cyrillic letters that look like Latin ones; cameras and people
# write either alphabet, so both map to the Latin form.
_CYRILLIC_TO_LATIN = str.maketrans(
    # Cyrillic A VE IE KA EM EN O ER ES TE U HA -> their Latin look-alikes
    "\u0410\u0412\u0415\u041a\u041c\u041d\u041e\u0420\u0421\u0422\u0423\u0425",
    "ABEKMHOPCTYX",
)
_SEPARATORS = re.compile(r"[\s\-_.·]+")
_PLATE = re.compile(r"^(?=.*\d)(?=.*[A-Z])[A-Z0-9]{4,10}$")


def normalise_plate(raw: object, field: str = "plate") -> str:
    """Upper-case, Cyrillic look-alikes as Latin, separators removed; raise if not a plate."""
    if not isinstance(raw, str):
        raise InvalidPlateError(field, "expected a string")
    plate = _SEPARATORS.sub("", raw.strip().upper()).translate(_CYRILLIC_TO_LATIN)
    if not _PLATE.match(plate):
        raise InvalidPlateError(
            field,
            "expected 4 to 10 Latin letters (or their Cyrillic look-alikes) and digits, "
            "with at least one of each",
        )
    return plate


def plate_key(normalised_plate: str) -> str:
    """The lookup key of a normalised plate; the only way plates are searched.

    A keyed blind index (HMAC-SHA256 under the vault's index key), never the plate itself.
    """
    from propdev.security.blind_index import plate_index
    from propdev.security.crypto import current_vault

    return plate_index(current_vault(), normalised_plate)


def seal_plate(conn: UnitConnection, normalised_plate: str, vehicle_id: str, owner_id: str) -> str:
    """The stored form of a plate (``plate_sealed``): AES-256-GCM under the owner's person
    key (made in ``conn``'s transaction if they have none), bound to the vehicle."""
    from propdev.security.crypto import current_vault
    from propdev.security.person_keys import person_key_in
    from propdev.security.personal import seal_plate_value

    vault = current_vault()
    key = person_key_in(conn.run, vault, owner_id)
    return seal_plate_value(vault, key, normalised_plate, vehicle_id)


def unseal_plate(row: Any) -> str:
    """The plate back from the stored form in a vehicle ``row`` (read with ``_COLUMNS``)."""
    from propdev.security.crypto import current_vault
    from propdev.security.personal import open_plate_value

    return open_plate_value(
        current_vault(),
        row["plate_sealed"],
        row["id"],
        owner_id=row["owner_id"],
        wrapped=row["person_key"],
    )


def plate_hint(normalised_plate: str) -> str:
    """What a notification may show of a plate: its last characters."""
    return normalised_plate[-HINT_LENGTH:]


@dataclass(frozen=True, slots=True)
class Vehicle:
    id: str
    owner_id: str
    plate: str
    created_at: float

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "plate": self.plate, "created_at": self.created_at}


class Vehicles:
    """Registration and lookup of residents' vehicles."""

    def __init__(self, db: Database, *, clock: Clock = time.time) -> None:
        self.db = db
        self.clock = clock

    def _vehicle(self, row: Any) -> Vehicle:
        return Vehicle(
            id=row["id"],
            owner_id=row["owner_id"],
            plate=unseal_plate(row),
            created_at=row["created_at"],
        )

    async def register(
        self, owner_id: str, raw_plate: object, *, actor: str | None = None
    ) -> tuple[Vehicle, bool]:
        """Register a plate for ``owner_id``: (the vehicle, whether it is new).

        The same plate registered again by its owner is the existing vehicle; by anyone else,
        ``PlateTakenError``. A new vehicle is audited (``vehicle.register``, by ``actor``, the
        owner by default; the vehicle's id, never the plate) in the transaction that stores it.
        """
        plate = normalise_plate(raw_plate)
        key = plate_key(plate)
        vehicle_id = str(uuid.uuid4())
        now = self.clock()
        record = trail.change(
            actor or trail.resident(owner_id),
            trail.VEHICLE_REGISTER,
            at=now,
            vehicle_id=vehicle_id,
            owner_id=owner_id,
        )

        def store(conn: UnitConnection) -> Row | None:
            existing = conn.run(_BY_PLATE, k=key)
            if existing:
                return existing[0]
            count = conn.run("SELECT COUNT(*) AS n FROM vehicles WHERE owner_id = :o", o=owner_id)
            if int(count[0]["n"]) >= MAX_VEHICLES:
                raise TooManyVehiclesError(f"at most {MAX_VEHICLES} vehicles per resident")
            sealed = seal_plate(conn, plate, vehicle_id, owner_id)
            inserted = conn.run(
                "INSERT INTO vehicles (id, owner_id, plate_key, plate_sealed, created_at) "
                "VALUES (:id, :o, :k, :p, :t) ON CONFLICT (plate_key) DO NOTHING RETURNING id",
                id=vehicle_id,
                o=owner_id,
                k=key,
                p=sealed,
                t=now,
            )
            if not inserted:  # registered at this very moment by someone: the unique key decided
                return conn.run(_BY_PLATE, k=key)[0]
            audit.sync_append(conn, record)
            return None

        try:
            existing = await self.db.unit(store)
        except TooManyVehiclesError:
            await self._refused(record.actor, "too_many_vehicles", owner_id, now)
            raise
        if existing is None:
            return Vehicle(vehicle_id, owner_id, plate, now), True
        if existing["owner_id"] != owner_id:  # never the plate, nor whose it is
            await self._refused(record.actor, "plate_taken", owner_id, now)
            raise PlateTakenError("this plate is registered by another resident")
        return self._vehicle(existing), False

    async def _refused(self, actor: str, code: str, owner_id: str, at: float) -> None:
        """The ``denied`` entry of a refused registration, before the refusal is answered."""
        record = trail.refused(actor, trail.VEHICLE_REGISTER, code, at=at, owner_id=owner_id)
        await self.db.unit(lambda conn: audit.sync_append(conn, record))

    async def of(self, owner_id: str) -> list[Vehicle]:
        rows = await self.db.fetch_all(
            f"SELECT {_COLUMNS} FROM vehicles WHERE owner_id = :o ORDER BY created_at, id",
            o=owner_id,
        )
        return [self._vehicle(r) for r in rows]

    async def remove(self, owner_id: str, vehicle_id: str, *, actor: str | None = None) -> None:
        """Remove the owner's vehicle, audited (``vehicle.remove``) in the same transaction."""
        record = trail.change(
            actor or trail.resident(owner_id),
            trail.VEHICLE_REMOVE,
            at=self.clock(),
            vehicle_id=vehicle_id,
            owner_id=owner_id,
        )

        def store(conn: UnitConnection) -> bool:
            removed = conn.run(
                "DELETE FROM vehicles WHERE id = :id AND owner_id = :o RETURNING id",
                id=vehicle_id,
                o=owner_id,
            )
            if removed:
                audit.sync_append(conn, record)
            return bool(removed)

        if not await self.db.unit(store):
            raise VehicleNotFoundError(vehicle_id)

    async def find(self, normalised_plate: str) -> Vehicle | None:
        """The vehicle registered with this plate, read from the store (no cache)."""
        row = await self.db.fetch_one(_BY_PLATE, k=plate_key(normalised_plate))
        return self._vehicle(row) if row is not None else None
