"""Push tests: a migrated store (SQLite and the machine's PostgreSQL), the three stand-ins."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from propdev.storage import Database, migrate
from tests.support.postgres import fresh_database
from tests.support.push_standins import (
    ApnsStandIn,
    FcmStandIn,
    StandInCA,
    WebPushStandIn,
    make_ca,
)


@pytest.fixture(params=["sqlite", "postgresql"])
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    with (
        fresh_database()
        if request.param == "postgresql"
        else contextlib.nullcontext(f"sqlite:///{tmp_path}/test.db")
    ) as url:
        database = Database(url)
        try:
            await migrate(database)
            yield database
        finally:
            await database.close()


@pytest.fixture
def ca(tmp_path: Path) -> StandInCA:
    return make_ca(tmp_path / "ca")


@pytest.fixture
def vapid_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture
async def fcm(ca: StandInCA) -> AsyncIterator[FcmStandIn]:
    standin = FcmStandIn(ca)
    await standin.start()
    yield standin
    await standin.stop()


@pytest.fixture
async def apns(ca: StandInCA) -> AsyncIterator[ApnsStandIn]:
    standin = ApnsStandIn(ca)
    await standin.start()
    yield standin
    await standin.stop()


@pytest.fixture
async def webpush(
    ca: StandInCA, vapid_key: ec.EllipticCurvePrivateKey
) -> AsyncIterator[WebPushStandIn]:
    from propdev.push import application_server_key

    standin = WebPushStandIn(ca, application_server_key(vapid_key))
    await standin.start()
    yield standin
    await standin.stop()
