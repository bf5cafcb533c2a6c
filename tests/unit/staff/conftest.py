"""A store (SQLite, PostgreSQL) with two sites and the Staff service over it."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from propdev.config import Settings
from propdev.security import create_user, open_vault
from propdev.staff import Role, Scope, Staff
from propdev.storage import Database, migrate
from propdev.storage.directory import Directory
from tests.support.postgres import fresh_database


class Cuts:
    """The subjects cut (the revocation broadcast, recorded)."""

    def __init__(self) -> None:
        self.users: list[str] = []

    async def __call__(self, user_id: str, at: float) -> None:
        self.users.append(user_id)


@pytest.fixture(params=["sqlite", "postgresql"])
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    sqlite = contextlib.nullcontext(f"sqlite:///{tmp_path}/test.db")
    with fresh_database() if request.param == "postgresql" else sqlite as url:
        database = Database(url)
        try:
            await migrate(database)
            await open_vault(Settings.from_env({"PROPDEV_DATA_DIR": str(tmp_path)}), database)
            directory = Directory(database)
            await directory.put_site("s1", "One")
            await directory.put_site("s2", "Two")
            yield database
        finally:
            await database.close()


@pytest.fixture
def cuts() -> Cuts:
    return Cuts()


@pytest.fixture
def staff(db: Database, cuts: Cuts) -> Staff:
    return Staff(db, cut=cuts)


@pytest.fixture
async def boss(db: Database) -> Scope:
    """The organisation-wide admin (an account from before staff rows: no row)."""
    user_id = await create_user(db, username="boss", password="pw-boss-123", roles=["admin"])
    return Scope(user_id, frozenset({Role.ADMIN}), None)
