"""Our side of the utilities: an apartment's account at the utilities system, its meters, and
the readings we accepted (each with its audit entry, in one transaction).

Who lives where is management's (migration 11: ``apartments``, ``residencies``; a resident who
moved out has no apartment). Migration 13 adds ``utility_accounts`` (apartment → account),
``utility_meters`` and ``meter_readings``. Values are stored in thousandths (an integer), so
comparisons are exact.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from propdev.housing.meters import Meter, MeterType, Reading, format_value
from propdev.storage import Database, run
from propdev.storage.audit import AuditRecord, append

MILLI = 1000


@dataclass(frozen=True, slots=True)
class Account:
    """A resident's utilities account: the apartment whose bills and meters are theirs."""

    account_id: str
    apartment_id: str
    building_id: str
    number: str

    def as_dict(self) -> dict[str, str]:
        return {
            "account_id": self.account_id,
            "apartment_id": self.apartment_id,
            "building_id": self.building_id,
            "apartment": self.number,
        }


def to_milli(value: Decimal) -> int:
    return int(value * MILLI)


def from_milli(value: int) -> Decimal:
    return Decimal(value) / MILLI


class UtilityStore:
    def __init__(self, db: Database, *, clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self._clock = clock

    async def account_of(self, user_id: str) -> Account | None:
        """The account of the apartment ``user_id`` lives in (not moved out), if it has one."""
        row = await self.db.fetch_one(
            "SELECT u.account_id, a.id AS apartment_id, a.building_id, a.number "
            "FROM residencies r JOIN apartments a ON a.id = r.apartment_id "
            "JOIN utility_accounts u ON u.apartment_id = a.id "
            "WHERE r.user_id = :u AND r.moved_out_at IS NULL",
            u=user_id,
        )
        if row is None:
            return None
        return Account(
            str(row["account_id"]),
            str(row["apartment_id"]),
            str(row["building_id"]),
            str(row["number"]),
        )

    async def meters_of(self, account: Account) -> dict[str, Meter]:
        rows = await self.db.fetch_all(
            "SELECT id, type, serial FROM utility_meters WHERE apartment_id = :a ORDER BY id",
            a=account.apartment_id,
        )
        return {
            str(r["id"]): Meter(
                str(r["id"]), account.account_id, MeterType(r["type"]), str(r["serial"])
            )
            for r in rows
        }

    async def last_reading(self, meter_id: str) -> Reading | None:
        row = await self.db.fetch_one(
            "SELECT value_milli, taken_at FROM meter_readings WHERE meter_id = :m "
            "ORDER BY value_milli DESC, taken_at DESC LIMIT 1",
            m=meter_id,
        )
        if row is None:
            return None
        return Reading(meter_id, from_milli(int(row["value_milli"])), float(row["taken_at"]))

    async def answer_for(self, user_id: str, key: str) -> dict[str, Any] | None:
        """The stored answer to an earlier submission with the same idempotency key."""
        row = await self.db.fetch_one(
            "SELECT answer FROM meter_readings WHERE user_id = :u AND idempotency_key = :k",
            u=user_id,
            k=key,
        )
        return dict(json.loads(row["answer"])) if row else None

    async def record(
        self,
        *,
        user_id: str,
        reading: Reading,
        key: str,
        upstream_id: str,
        answer: dict[str, Any],
    ) -> dict[str, Any]:
        """Store an accepted reading and its audit entry in one transaction."""
        now = self._clock()
        reading_id = str(uuid.uuid4())
        answer = {"id": reading_id, **answer}
        async with self.db.transaction() as conn:
            await run(
                conn,
                "INSERT INTO meter_readings (id, meter_id, user_id, value_milli, taken_at, "
                "submitted_at, idempotency_key, upstream_id, answer) VALUES (:id, :m, :u, :v, "
                ":t, :s, :k, :up, :a)",
                id=reading_id,
                m=reading.meter_id,
                u=user_id,
                v=to_milli(reading.value),
                t=reading.taken_at,
                s=now,
                k=key,
                up=upstream_id,
                a=json.dumps(answer),
            )
            await append(conn, self.db.dialect, self._audit(user_id, reading, "granted", ""))
        return answer

    async def audit_refusal(self, *, user_id: str, reading: Reading, reason: str) -> None:
        async with self.db.transaction() as conn:
            await append(conn, self.db.dialect, self._audit(user_id, reading, "denied", reason))

    def _audit(self, user_id: str, reading: Reading, decision: str, reason: str) -> AuditRecord:
        detail = f"meter={reading.meter_id} value={format_value(reading.value)}"
        return AuditRecord(
            at=self._clock(),
            actor=f"user:{user_id}",
            action="meter_reading",
            access_point_id=None,
            decision=decision,
            reason=f"{reason} {detail}".strip(),
            subject=user_id,
        )
