from __future__ import annotations

import pytest
from structlog.testing import capture_logs

from propdev.storage import CURRENT_VERSION, Database, MigrationError, migrate
from propdev.storage.migrations import MIGRATIONS, kind_of


async def test_migrating_twice_keeps_the_data_and_the_version(db: Database) -> None:
    await db.execute("INSERT INTO sites (id, name) VALUES ('s1', 'Site')")
    found = await migrate(db)
    assert found == CURRENT_VERSION
    assert await db.fetch_all("SELECT id, name FROM sites") == [{"id": "s1", "name": "Site"}]
    row = await db.fetch_one("SELECT MAX(version) AS v FROM schema_version")
    assert row is not None and row["v"] == CURRENT_VERSION


async def test_ping_is_true_for_a_reachable_database(db: Database) -> None:
    assert await db.ping() is True


async def test_an_unknown_version_recorded_without_a_kind_is_refused(db: Database) -> None:
    # Written by a release from before the kinds: nothing says it is safe to run on.
    await db.execute(
        "INSERT INTO schema_version (version, description) VALUES (9999, 'from the future')"
    )
    with pytest.raises(MigrationError, match=r"9999 \(no kind recorded: from the future\)"):
        await migrate(db)


async def test_an_unknown_contract_version_is_refused_naming_it(db: Database) -> None:
    await db.execute(
        "INSERT INTO schema_version (version, description, kind)"
        " VALUES (9999, 'drop the old column', 'contract')"
    )
    with pytest.raises(MigrationError, match=r"9999 \(contract: drop the old column\)"):
        await migrate(db)


async def test_an_unknown_expand_version_is_accepted_with_a_warning(db: Database) -> None:
    await db.execute(
        "INSERT INTO schema_version (version, description, kind)"
        " VALUES (9999, 'a new table', 'expand')"
    )
    with capture_logs() as logs:
        found = await migrate(db)
    assert found == 9999
    warnings = [e for e in logs if e["event"] == "schema_versions_from_a_newer_release"]
    assert warnings == [
        {
            "event": "schema_versions_from_a_newer_release",
            "log_level": "warning",
            "versions": [9999],
            "descriptions": ["a new table"],
            "kind": "expand",
        }
    ]


async def test_every_version_is_recorded_with_its_kind(db: Database) -> None:
    rows = await db.fetch_all("SELECT version, kind FROM schema_version ORDER BY version")
    assert rows == [{"version": v, "kind": kind_of(v)} for v in sorted(v for v, _, _ in MIGRATIONS)]
    assert {r["kind"] for r in rows} <= {"expand", "contract"}


async def test_kinds_missing_from_an_older_release_are_filled_in(db: Database) -> None:
    # The table as releases before the kinds made it: no kind column at all.
    await db.execute("CREATE TABLE old_versions AS SELECT version, description FROM schema_version")
    await db.execute("DROP TABLE schema_version")
    await db.execute(
        "CREATE TABLE schema_version (version INTEGER PRIMARY KEY, description TEXT NOT NULL,"
        " applied_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP)"
    )
    await db.execute(
        "INSERT INTO schema_version (version, description)"
        " SELECT version, description FROM old_versions"
    )
    await migrate(db)
    rows = await db.fetch_all("SELECT version, kind FROM schema_version ORDER BY version")
    assert rows == [{"version": v, "kind": kind_of(v)} for v in sorted(v for v, _, _ in MIGRATIONS)]


async def test_a_missing_middle_version_is_applied(db: Database) -> None:
    await db.execute("DROP TABLE device_state")
    await db.execute("DELETE FROM schema_version WHERE version = 2")
    await migrate(db)
    assert await db.fetch_all("SELECT * FROM device_state") == []
