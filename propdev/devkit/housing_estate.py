"""The demo apartments: who lives there, their utilities account, the meters and what they
showed last.

Shared by ``seed_utilities`` (our store: apartment and residency if missing, the apartment's
account and meters) and the simulated utilities system (its accounts, meters and bills), so both
sides agree.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from decimal import Decimal

from propdev.housing import MeterType, to_milli
from propdev.storage import Database, run

INITIAL_AGE = 30 * 86400.0  # the seeded readings were taken this long before seeding


@dataclass(frozen=True, slots=True)
class DemoMeter:
    id: str
    type: MeterType
    serial: str
    initial: Decimal


@dataclass(frozen=True, slots=True)
class DemoAccount:
    username: str
    account_id: str
    building_id: str
    number: str
    meters: tuple[DemoMeter, ...]


DEMO_ACCOUNTS: tuple[DemoAccount, ...] = (
    DemoAccount(
        "anna",
        "LS-100012",
        "bld-a",
        "12",
        (
            DemoMeter("m-a12-cw", MeterType.COLD_WATER, "CW-7731", Decimal("231.405")),
            DemoMeter("m-a12-hw", MeterType.HOT_WATER, "HW-7732", Decimal("118.020")),
            DemoMeter("m-a12-ed", MeterType.ELECTRICITY_DAY, "EL-5501-T1", Decimal("8412.3")),
            DemoMeter("m-a12-en", MeterType.ELECTRICITY_NIGHT, "EL-5501-T2", Decimal("3120.7")),
            DemoMeter("m-a12-ht", MeterType.HEAT, "HT-0912", Decimal("14.218")),
        ),
    ),
    DemoAccount(
        "boris",
        "LS-200034",
        "bld-b",
        "34",
        (
            DemoMeter("m-b34-cw", MeterType.COLD_WATER, "CW-8810", Decimal("97.110")),
            DemoMeter("m-b34-hw", MeterType.HOT_WATER, "HW-8811", Decimal("45.002")),
            DemoMeter("m-b34-ed", MeterType.ELECTRICITY_DAY, "EL-6620-T1", Decimal("2210")),
            DemoMeter("m-b34-en", MeterType.ELECTRICITY_NIGHT, "EL-6620-T2", Decimal("904.5")),
        ),
    ),
)


async def seed_utilities(db: Database, user_ids: dict[str, str], *, now: float) -> None:
    """The demo apartments (``estate.DEMO_ACCOUNTS``) for the users named in ``user_ids``
    (username → id): the apartment and the residency unless management has them already, the
    account, the meters and each meter's initial reading. Idempotent."""
    for demo in DEMO_ACCOUNTS:
        user_id = user_ids.get(demo.username)
        if user_id is None:
            continue
        async with db.transaction() as conn:
            found = await run(
                conn,
                "SELECT id FROM apartments WHERE building_id = :b AND number = :n",
                b=demo.building_id,
                n=demo.number,
            )
            apartment_id = str(found[0]["id"]) if found else f"{demo.building_id}-{demo.number}"
            if not found:
                await run(
                    conn,
                    "INSERT INTO apartments (id, building_id, number, created_at) "
                    "VALUES (:id, :b, :n, :t)",
                    id=apartment_id,
                    b=demo.building_id,
                    n=demo.number,
                    t=now,
                )
            if not await run(conn, "SELECT 1 AS x FROM residencies WHERE user_id = :u", u=user_id):
                await run(
                    conn,
                    "INSERT INTO residencies (user_id, apartment_id, since) VALUES (:u, :a, :t)",
                    u=user_id,
                    a=apartment_id,
                    t=now,
                )
            if await run(
                conn, "SELECT 1 AS x FROM utility_accounts WHERE apartment_id = :a", a=apartment_id
            ):
                continue
            await run(
                conn,
                "INSERT INTO utility_accounts (apartment_id, account_id, created_at) "
                "VALUES (:a, :acc, :t)",
                a=apartment_id,
                acc=demo.account_id,
                t=now,
            )
            for meter in demo.meters:
                await run(
                    conn,
                    "INSERT INTO utility_meters (id, apartment_id, type, serial, created_at) "
                    "VALUES (:id, :a, :type, :serial, :t)",
                    id=meter.id,
                    a=apartment_id,
                    type=str(meter.type),
                    serial=meter.serial,
                    t=now,
                )
                await run(
                    conn,
                    "INSERT INTO meter_readings (id, meter_id, user_id, value_milli, taken_at, "
                    "submitted_at, idempotency_key, upstream_id, answer) VALUES (:id, :m, :u, "
                    ":v, :t, :t, :k, NULL, '{}')",
                    id=str(uuid.uuid4()),
                    m=meter.id,
                    u=user_id,
                    v=to_milli(meter.initial),
                    t=now - INITIAL_AGE,
                    k=f"seed:{meter.id}",
                )
