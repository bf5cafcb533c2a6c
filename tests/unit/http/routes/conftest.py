"""A migrated SQLite store for the routes whose services are the real ones."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from propdev.security import Vault, attach_vault
from propdev.storage import Database, migrate


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = Database(f"sqlite:///{tmp_path}/routes.db")
    try:
        await migrate(database)
        attach_vault(database, Vault.for_tests())  # explicit: personal data needs a key store
        yield database
    finally:
        await database.close()
