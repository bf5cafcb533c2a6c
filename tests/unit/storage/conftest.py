"""The same storage tests on SQLite (embedded default) and on the machine's real PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import psycopg
import pytest

from propdev.storage import Database, migrate
from tests.conftest import POSTGRES_URL


@pytest.fixture(params=["sqlite", "postgresql"])
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    if request.param == "sqlite":
        database = Database(f"sqlite:///{tmp_path}/test.db")
        await migrate(database)
        yield database
        await database.close()
        return
    name = f"propdev_test_{uuid.uuid4().hex[:12]}"
    admin = POSTGRES_URL + "postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    database = Database(POSTGRES_URL + name)
    try:
        await migrate(database)
        yield database
    finally:
        await database.close()
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
