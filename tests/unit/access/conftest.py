"""A small estate in a fresh store (SQLite and PostgreSQL), an injectable clock, a simulator."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from propdev.access import AccessRules, GuestPasses, PassCodes, Vehicles
from propdev.devkit import VendorSimulator
from propdev.partners import InProcessAdapter, PartnerGateway
from propdev.security import Vault, attach_vault, create_user
from propdev.storage import Database, migrate
from propdev.storage.directory import AccessPoint, Directory
from tests.support.postgres import fresh_database

SITE = "site-1"
DOOR = "ap-door"
BARRIER = "ap-barrier"
OTHER_DOOR = "ap-other"


class FakeClock:
    """Epoch seconds that move only when told."""

    def __init__(self, at: float) -> None:
        self.at = at

    def __call__(self) -> float:
        return self.at

    def advance(self, seconds: float) -> None:
        self.at += seconds


@dataclass
class Estate:
    db: Database
    clock: FakeClock
    rules: AccessRules
    passes: GuestPasses
    vehicles: Vehicles
    owner: str
    neighbour: str


def moscow(year: int, month: int, day: int, hour: int, minute: int = 0) -> float:
    """Epoch seconds of a Moscow wall-clock time (UTC+3, no DST since 2014)."""
    return datetime(year, month, day, hour, minute, tzinfo=UTC).timestamp() - 3 * 3600


# Wednesday 2025-01-15 12:00 in Moscow.
NOON_WEDNESDAY = moscow(2025, 1, 15, 12, 0)


def _sqlite(tmp_path: Path) -> contextlib.AbstractContextManager[str]:
    return contextlib.nullcontext(f"sqlite:///{tmp_path}/access.db")


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with fresh_database() if request.param == "postgresql" else _sqlite(tmp_path) as found:
        yield found


@pytest.fixture
async def estate(url: str, cheap_passwords: None) -> AsyncIterator[Estate]:
    """(The residents here never sign in: ``cheap_passwords``.)"""
    db = Database(url)
    try:
        await migrate(db)
        attach_vault(db, Vault.for_tests())  # explicit: personal data needs a key store
        directory = Directory(db)
        await directory.put_site(SITE, "Site")
        await directory.put_building("bld", SITE, "Building")
        await directory.put_partner("simulator", "simulator", "simulator", [])
        for ap_id, kind, device in (
            (DOOR, "door", "sim-door-1"),
            (OTHER_DOOR, "door", "sim-door-2"),
            (BARRIER, "barrier", "sim-barrier-1"),
        ):
            await directory.put_access_point(
                AccessPoint(ap_id, ap_id, kind, SITE, "bld", "simulator", device)
            )
        owner = await create_user(db, username="owner", password="pw-owner-1", roles=["resident"])
        neighbour = await create_user(
            db, username="neighbour", password="pw-neighbour-1", roles=["resident"]
        )
        clock = FakeClock(NOON_WEDNESDAY)
        rules = AccessRules(db, clock=clock)
        passes = GuestPasses(db, rules, PassCodes(b"k" * 32), clock=clock)
        vehicles = Vehicles(db, clock=clock)
        yield Estate(db, clock, rules, passes, vehicles, owner, neighbour)
    finally:
        await db.close()


@pytest.fixture
async def sim() -> AsyncIterator[VendorSimulator]:
    simulator = VendorSimulator()
    yield simulator
    await simulator.close()


@pytest.fixture
def gateway(sim: VendorSimulator) -> PartnerGateway:
    return PartnerGateway(
        InProcessAdapter(sim), timeout=5.0, breaker_failures=50, breaker_reset=30.0
    )
