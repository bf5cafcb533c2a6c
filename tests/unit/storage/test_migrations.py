from __future__ import annotations

import pytest

from propdev.storage import CURRENT_VERSION, Database, MigrationError, migrate


async def test_migrating_twice_keeps_the_data_and_the_version(db: Database) -> None:
    await db.execute("INSERT INTO sites (id, name) VALUES ('s1', 'Site')")
    found = await migrate(db)
    assert found == CURRENT_VERSION
    assert await db.fetch_all("SELECT id, name FROM sites") == [{"id": "s1", "name": "Site"}]
    row = await db.fetch_one("SELECT MAX(version) AS v FROM schema_version")
    assert row is not None and row["v"] == CURRENT_VERSION


async def test_ping_is_true_for_a_reachable_database(db: Database) -> None:
    assert await db.ping() is True


async def test_a_database_from_newer_code_is_refused(db: Database) -> None:
    await db.execute(
        "INSERT INTO schema_version (version, description) VALUES (9999, 'from the future')"
    )
    with pytest.raises(MigrationError, match="9999"):
        await migrate(db)


async def test_a_missing_middle_version_is_applied(db: Database) -> None:
    await db.execute("DROP TABLE device_state")
    await db.execute("DELETE FROM schema_version WHERE version = 2")
    await migrate(db)
    assert await db.fetch_all("SELECT * FROM device_state") == []
