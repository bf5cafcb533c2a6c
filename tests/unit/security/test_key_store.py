"""Personal data is never sealed under a key invented on the spot: without a key store attached,
sealing raises (a throwaway key would make the data die with the process)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from propdev.access import plate_key
from propdev.security import NoKeyStoreError, Vault, attach_vault, create_user, crypto, vault_of
from propdev.storage import Database, migrate


@pytest.fixture
async def bare_db(tmp_path: Path) -> AsyncIterator[Database]:
    """A migrated database nobody attached a vault to."""
    database = Database(f"sqlite:///{tmp_path}/bare.db")
    await migrate(database)
    yield database
    await database.close()


async def test_sealing_for_a_database_without_a_key_store_raises_and_stores_nothing(
    bare_db: Database,
) -> None:
    with pytest.raises(NoKeyStoreError, match="no key store"):
        vault_of(bare_db)
    with pytest.raises(NoKeyStoreError):
        await create_user(
            bare_db, username="anna", password="pw-anna-1", roles=["resident"], full_name="Anna"
        )
    assert await bare_db.fetch_all("SELECT id FROM users") == []
    assert await bare_db.fetch_all("SELECT kid FROM data_keys") == []  # no key was made up


async def test_a_vault_attached_explicitly_seals_and_opens(bare_db: Database) -> None:
    vault = attach_vault(bare_db, Vault.for_tests())
    assert vault_of(bare_db) is vault
    sealed = vault.seal("Anna", table="users", column="full_name", row_id="u1")
    assert sealed.startswith("v1:") and "Anna" not in sealed
    assert vault.open(sealed, table="users", column="full_name", row_id="u1") == "Anna"


def test_indexing_a_plate_with_no_vault_in_the_process_raises(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(crypto, "_CURRENT", [])  # as in a process that attached none
    with pytest.raises(NoKeyStoreError):
        plate_key("A123BC77")
