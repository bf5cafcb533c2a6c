"""The demo apartments: who lives there, their utilities account, the meters and what they
showed last.

Shared by ``seed_utilities`` (our store: apartment and residency if missing, the apartment's
account and meters) and the simulated utilities system (its accounts, meters and bills), so both
sides agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from propdev.utilities.meters import MeterType

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
