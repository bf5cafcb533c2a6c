"""The integrity tests on SQLite (embedded default) and on the machine's real PostgreSQL."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from propdev.storage import Database, migrate
from tests.support.postgres import fresh_database


@pytest.fixture(params=["sqlite", "postgresql"])
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    with fresh_database() if request.param == "postgresql" else _sqlite(tmp_path) as url:
        database = Database(url)
        try:
            await migrate(database)
            yield database
        finally:
            await database.close()


def _sqlite(tmp_path: Path) -> contextlib.AbstractContextManager[str]:
    return contextlib.nullcontext(f"sqlite:///{tmp_path}/test.db")
