"""A migrated store (SQLite and the machine's PostgreSQL) with a small estate and a vault."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from propdev.config import Settings
from propdev.security import create_user, open_vault
from propdev.storage import Database, migrate
from propdev.storage.directory import AccessPoint, Directory
from tests.support.postgres import fresh_database

OPERATOR = "operator:op-1"


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
            await directory.put_building("bld-b", "site-1", "B")
            await directory.put_partner("sim", "sim", "simulator", [])
            for ap_id, device in (("ap-1", "d-1"), ("ap-2", "d-2")):
                await directory.put_access_point(
                    AccessPoint(ap_id, ap_id, "door", "site-1", "bld-a", "sim", device)
                )
            yield database
        finally:
            await database.close()


@pytest.fixture
async def resident(db: Database) -> str:
    user_id = await create_user(
        db, username="rita", password="pw-rita-123", roles=["resident"], full_name="Rita R"
    )
    await Directory(db).grant(user_id, "ap-1")
    return user_id
